"""pyserial URL handlers of the rig: `--port` takes pyserial's URLs
(rfc2217://host:port, socket://host:port), the way board farms share serial
ports; this package adjusts the one that needs it for the rig's use.

pyserial looks a URL's protocol up in the packages of
`serial.protocol_handler_packages`, in order (its documented way to add or
replace a handler: serial/__init__.py serial_for_url); install() puts this
package first, so that mpremote's ports, which it opens by URL itself, get
the same handler as the rig's.
"""

from __future__ import annotations

import serial

PACKAGE = __name__


def install() -> None:
    if PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.insert(0, PACKAGE)
