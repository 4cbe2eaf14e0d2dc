"""The BLE GATT profile as data: services, characteristics, their value
formats, ranges and security. ble_gatt.py builds the GATT server from it at
boot (and then lets go of this module: its text is not kept in RAM), and
the host renders docs/ble_profile.md from it (hil/ble/doc.py; `heatrig ble doc`).

Every multi-byte field is little-endian. A characteristic is a tuple:

    (uuid, name, props, enc, fields, repeat, writes, description)

uuid      a 16-bit int (standard services), or NN of the custom service,
          whose UUIDs are CUSTOM_UUID % NN (the service itself: NN = 0)
props     READ | WRITE | WRITE_NO_RESPONSE | NOTIFY (the bluetooth module's flags)
enc       True: an encrypted (bonded) link only; the stack refuses it on an
          open link (ATT 0x0F insufficient encryption)
fields    the value read, in order: (name, type, unit, lo, hi, description);
          types u8 i8 u16 u32 i32, aN (N ASCII bytes), utf8 (the whole value)
repeat    None, or (max_count, fields): a group repeated after `fields`
writes    None (not writable), or the forms a write may take, each a tuple
          of fields with their allowed ranges (hi None: no upper bound). A
          write whose length matches no form is refused with ATT_LENGTH, a
          field out of its range with ATT_VALUE.
"""

from micropython import const

# characteristic properties, as the bluetooth module numbers them
READ = const(0x0002)
WRITE_NO_RESPONSE = const(0x0004)
WRITE = const(0x0008)
NOTIFY = const(0x0010)
READ_ENCRYPTED = const(0x0200)
WRITE_ENCRYPTED = const(0x1000)

# ATT error codes the profile answers writes with
ATT_OK = const(0)
ATT_LENGTH = const(0x0D)  # invalid attribute value length
ATT_VALUE = const(0x13)  # value not allowed
ATT_STATE = const(0x80)  # application: not in this state (e.g. already registered)
ATT_ENCRYPTION = const(0x0F)  # insufficient encryption: the stack's answer on an open link

NAME = "heatrig"  # GAP name, advertised
# Device Information values (the serial and the firmware version are the unit's)
MANUFACTURER = "heatrig"
MODEL = "HR-1"
HARDWARE_REV = "A"
SOFTWARE_REV = "ble 1.0"  # this profile's version
CUSTOM_UUID = "7e1a%04x-5c1d-4b8e-9f2a-6b3c4d5e6f70"
ADV_INTERVAL_MS = const(500)
VERSION = const(1)  # the "v" field of the custom characteristics

_V = ("v", "u8", "", 1, 1, "format version")


def custom_uuid(nn):
    return CUSTOM_UUID % nn


# standard services: value formats
_UTF8 = (("text", "utf8", "", 0, 0, "UTF-8 text"),)

# (uuid, name, first characteristic index, end index) of CHARS
SERVICES = (
    (0x180A, "Device Information", 0, 6),
    (0x180F, "Battery", 6, 7),
    (0, "heatrig", 7, 22),  # the custom service: CUSTOM_UUID % 0
    (0x10, "update", 22, 24),  # firmware update (ble_update.py, docs/update.md): CUSTOM_UUID % 0x10
)
CUSTOM_MAX = const(0xFF)  # a service (and its characteristics) numbered at most this is custom

CHARS = (
    # --- Device Information (0x180A) -------------------------------------------
    (0x2A29, "manufacturer", READ, False, _UTF8, None, None, "`heatrig`"),
    (0x2A24, "model", READ, False, _UTF8, None, None, "`HR-1`"),
    (0x2A25, "serial", READ, False, _UTF8, None, None,
     "`H<holder code>-C<charger code>` (the codes of characteristic ids)"),
    (0x2A27, "hardware_rev", READ, False, _UTF8, None, None, "`A`"),
    (0x2A26, "firmware_rev", READ, False, _UTF8, None, None, "the firmware version (firmware/version.py)"),
    (0x2A28, "software_rev", READ, False, _UTF8, None, None, "`ble 1.0`: this profile's version"),
    # --- Battery (0x180F) ---------------------------------------------------------
    (0x2A19, "battery_level", READ | NOTIFY, False,
     (("level", "u8", "%", 0, 100, "the pocket charger's cell"),), None, None,
     "Notified when it changes (checked once a second)."),
    # --- heatrig (custom) -------------------------------------------------------------
    (0x01, "status", READ | NOTIFY, False, (
        _V,
        ("flags", "u8", "", 0, 255, "b0 docked, b1 holder charged for a session, b2 in session, b3 USB, "
                                    "b4 charging, b5 locked, b6 daily limit reached, b7 pairing window open"),
        ("holder_soc", "u8", "%", 0, 100, "holder cell"),
        ("charger_soc", "u8", "%", 0, 100, "pocket charger cell"),
        ("kit", "u8", "", 0, 7, "0 sleep, 1 docked, 2 charging, 3 ready, 4 in_session, 5 cooling, 6 fault, 7 off"),
    ), None, None, "Notified when it changes (checked once a second, and at state changes)."),
    (0x02, "heating", READ | NOTIFY, False, (
        _V,
        ("state", "u8", "", 0, 5, "0 sleep, 1 preheat, 2 heating (ready), 3 end warning, 4 cooling, 5 fault"),
        ("puffs", "u8", "", 0, 255, "puffs detected this session"),
        ("puffs_max", "u8", "", 0, 255, "puffs a session allows"),
        ("elapsed_s", "u16", "s", 0, 65535, "since the session started; 0 outside a session"),
        ("remaining_s", "u16", "s", 0, 65535, "to the session's time limit; 0 outside a session"),
        ("end_reason", "u8", "", 0, 4, "of the last session: 0 none, 1 time limit, 2 puff limit, 3 user stop, "
                                       "4 fault"),
    ), None, None, "Notified at every state change and puff, and every 10 s in a session "
                   "(read between: elapsed_s as of the last second)."),
    (0x03, "counters", READ, True, (
        _V,
        ("sessions", "u32", "", 0, None, "sessions completed"),
        ("puffs", "u32", "", 0, None, "puffs detected"),
        ("heater_on_s", "u32", "s", 0, None, "time in sessions"),
        ("charge_cycles", "u32", "", 0, None, "USB charges of the charger cell completed"),
        ("holder_charges", "u32", "", 0, None, "holder charges completed"),
        ("boots", "u32", "", 0, None, "boots of the firmware"),
    ), None, None, "Lifetime counters, kept on flash."),
    (0x04, "faults", READ | NOTIFY, True, (
        _V,
        ("active", "u8", "", 0, 255, "the fault latched now (0 none; codes as in firmware/faults.py)"),
        ("total", "u16", "", 0, 65535, "faults recorded since the log was last cleared (wraps)"),
        ("n", "u8", "", 0, 8, "entries that follow"),
    ), (8, (
        ("code", "u8", "", 1, 255, "fault code"),
        ("detail", "i32", "", None, None, "the fault's detail (a reading, a channel)"),
    )), None, "The fault log's last entries, oldest first. Notified when it changes."),
    (0x05, "haptics", READ | WRITE, True, (
        _V,
        ("mask", "u8", "", 0, 15, "vibrations on: b0 heating start, b1 ready, b2 end warning, b3 refusals"),
        ("intensity", "u8", "%", 0, 100, "0 silences them all"),
    ), None, (
        (("v", "u8", "", 1, 1, ""), ("mask", "u8", "", 0, 15, ""), ("intensity", "u8", "%", 0, 100, "")),
    ), "Stored on flash."),
    (0x06, "find", READ | WRITE, True, (
        ("seconds", "u8", "s", 0, 120, "seconds of vibration left"),
    ), None, (
        (("seconds", "u8", "s", 0, 120, "1..120: vibrate 500 ms on / 500 ms off that long; 0: stop"),),
    ), "Find my device: the holder vibrates."),
    (0x07, "lock", READ | WRITE | NOTIFY, True, (
        ("locked", "u8", "", 0, 1, "1: the holder button does not start a session"),
    ), None, (
        (("locked", "u8", "", 0, 1, ""),),
    ), "Stored on flash. Notified when it changes."),
    (0x08, "usage", READ, True, (
        _V,
        ("sessions_24h", "u8", "", 0, 255, "sessions started in the last 24 h"),
        ("puffs_24h", "u16", "", 0, 65535, "puffs in those sessions"),
        ("limit", "u8", "", 0, 30, "sessions allowed per 24 h (0 none)"),
        ("sharing", "u8", "", 0, 1, "1 usage history kept"),
    ), None, None, "sessions_24h and puffs_24h read 0 while sharing is off. The history is in RAM "
                   "(a reboot starts it afresh); it holds the last 64 sessions."),
    (0x09, "limit", READ | WRITE, True, (
        ("limit", "u8", "", 0, 30, "sessions per rolling 24 h, 0 = no limit"),
    ), None, (
        (("limit", "u8", "", 0, 30, ""),),
    ), "Stored on flash. At the limit the holder button is refused (console event "
       "`refused limit`)."),
    (0x0A, "sharing", READ | WRITE, True, (
        ("sharing", "u8", "", 0, 1, "1 share (usage history kept), 0 opt out"),
    ), None, (
        (("sharing", "u8", "", 0, 1, ""),),
    ), "Stored on flash. Opting out clears the usage history and keeps none; with a daily "
       "limit set, only the start times the limit needs are kept, and never reported."),
    (0x0B, "alerts", READ | NOTIFY, False, (
        _V,
        ("flags", "u8", "", 0, 3, "b0 too cold (< 0 C), b1 too hot (> 50 C)"),
        ("ambient_c", "i8", "C", -128, 127, "ambient temperature (board thermistor), 1 C steps with 0.2 C "
                                            "hysteresis"),
    ), None, None, "Notified when it changes (checked once a second)."),
    (0x0C, "registration", READ | WRITE, True, (
        _V,
        ("registered", "u8", "", 0, 1, ""),
        ("date", "u32", "s", 0, None, "warranty start, unix seconds UTC (0 unregistered)"),
        ("pending_clear", "u8", "", 0, 1, "1: a clear waits for the holder button's click"),
    ), None, (
        (("v", "u8", "", 1, 1, ""), ("registered", "u8", "", 1, 1, ""),
         ("date", "u32", "s", 1, None, "registers (ATT 0x80 if registered already)")),
        (("v", "u8", "", 1, 1, ""), ("registered", "u8", "", 0, 0,
                                     "asks to clear (ATT 0x80 if not registered): a click of the holder "
                                     "button within 30 s clears it, else the request lapses")),
    ), "Kept in its own record on flash: survives reset and unpair."),
    (0x0D, "ids", READ, True, (
        _V,
        ("holder", "a8", "", None, None, "holder code"),
        ("charger", "a8", "", None, None, "charger code"),
        ("box", "a12", "", None, None, "box code, digits"),
    ), None, None, "From the factory record `ids` on flash; unprovisioned units derive them from "
                   "the BLE address."),
    (0x0E, "control", WRITE, True, (), None, (
        (("opcode", "u8", "", 1, 3, "1 reset (the device reboots), 2 unpair (every bond removed, links "
                                    "dropped), 3 clear the fault log"),),
    ), "Acts after the write's response, within 250 ms."),
    (0x0F, "result", READ | NOTIFY, True, (
        ("char", "u8", "", 0, 255, "NN of the characteristic last written"),
        ("att", "u8", "", 0, 255, "the ATT code its write got (0 ok)"),
    ), None, None, "The outcome of the last write to the custom service, as an ATT code: what a "
                   "client reads where the stack cannot return the error itself (ESP32). Notified "
                   "when it changes."),
    # --- update (custom; served by ble_update.py, not ble_gatt.py) -------------------------
    (0x11, "update_control", READ | WRITE | NOTIFY, True, (
        _V,
        ("state", "u8", "", 0, 5, "0 idle, 1 receiving, 2 paused (a session heats), 3 ready, 4 switching, "
                                  "5 refused"),
        ("code", "u8", "", 0, 17, "reason: 0 ok, 1 busy, 2 state, 3 size, 4 header, 5 signature, 6 hardware, "
                                  "7 version, 8 format, 9 file_hash, 10 image_hash, 11 flash, 12 offset, "
                                  "13 trial, 14 aborted, 15 timeout, 16 no_key, 17 memory"),
        ("flags", "u8", "", 0, 3, "b0 running on trial, b1 the last update was rolled back"),
        ("offset", "u32", "B", 0, None, "bytes taken (written, hashed): send from here"),
        ("total", "u32", "B", 0, None, "the image's size"),
        ("window", "u16", "B", 0, 4096, "bytes to send from offset now (0: wait for the next status)"),
        ("chunk", "u16", "B", 0, 244, "data bytes per write: the negotiated MTU less 7"),
        ("rollback", "u8", "", 0, 5, "why: 0 none, 1 reset, 2 exception, 3 timeout, 4 selfcheck, 5 missing"),
    ), None, (
        (("op", "u8", "", 1, 1, "begin (or resume: the same size and id)"), ("total", "u32", "B", 16, None, ""),
         ("id", "a8", "", None, None, "the image's id: its SHA-256's first 8 bytes")),
        (("op", "u8", "", 2, 4, "2 abort, 3 commit (switch and reboot), 4 status"),),
    ), "The update's control point: write a request, read or subscribe for the status. A refused "
       "request is reported in `code`."),
    (0x12, "update_data", WRITE_NO_RESPONSE, True, (), None, None,
     "Write without response: offset u32, then up to `chunk` bytes of the image."),
)

# struct codes and sizes of the field types (aN: N bytes)
TYPES = {"u8": ("B", 1), "i8": ("b", 1), "u16": ("H", 2), "u32": ("I", 4), "i32": ("i", 4)}


def field_fmt(fields):
    """(struct format, size) of a tuple of fields (no utf8 among them)."""
    fmt = "<"
    n = 0
    for f in fields:
        t = f[1]
        if t[0] == "a":
            k = int(t[1:])
            fmt += "%ds" % k
            n += k
        else:
            c, k = TYPES[t]
            fmt += c
            n += k
    return fmt, n


def compile_forms(writes):
    """The write forms as ble_gatt checks them: (size, struct format, lows,
    highs) each."""
    out = []
    for fields in writes:
        fmt, n = field_fmt(fields)
        out.append((n, fmt, tuple(f[3] for f in fields), tuple(f[4] for f in fields)))
    return tuple(out)
