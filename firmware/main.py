"""Device entry point: MicroPython runs this after boot."""

import boot_hold

if not boot_hold.take():
    import app

    app.main()
