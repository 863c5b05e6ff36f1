"""Photos in, 2D evidence out: image loading (EXIF, focal length), the BlazePose detector, and the
overlay / thumbnail pictures drawn over photos."""
