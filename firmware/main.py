"""Device entry point: MicroPython runs this after boot."""

import app

app.main()
