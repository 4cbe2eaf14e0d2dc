"""The console's `update` command: the update protocol (update.py) as text
lines, for boards on a cable (docs/update.md):

    update begin SIZE IMAGE_ID_HEX     update data OFFSET BASE64
    update status                      update commit        update abort

Every line gets one reply: "OK update state=... offset=... window=..." or,
refused, "ERR 8 update CODE state=...". Loaded only when the command is used.
"""

import gc
import time
from binascii import a2b_base64, unhexlify

import update
from micropython import const

E_REFUSED = const(8)


def command(con, args):
    op = args[0] if args else ""
    n = len(args)
    if not ((op in ("begin", "data") and n == 3) or (op in ("status", "commit", "abort") and n == 1)):
        con.error(2, "usage: update begin SIZE ID | data OFFSET B64 | status | commit | abort")
        return
    try:  # the words first: a malformed line opens no session
        number = int(args[1]) if n == 3 else 0
        blob = (unhexlify if op == "begin" else a2b_base64)(args[2]) if n == 3 else b""
    except ValueError:
        con.error(2, "usage: update begin SIZE ID | data OFFSET B64 | status | commit | abort")
        return
    now = time.ticks_ms()
    try:
        s = update.open_session(con.app)
    except MemoryError:
        gc.collect()
        con.reply("ERR %d update memory" % E_REFUSED)
        return
    code = update.OK
    if op == "begin":
        code = s.begin(number, blob, now)
    elif op == "data":
        code = s.feed(number, blob)
        s.service(now)  # a whole block: taken now, so that this reply tells
    elif op == "abort":
        code = s.abort()
    elif op == "commit":
        code = s.can_commit()
    if code:
        con.reply("ERR %d update %s %s" % (E_REFUSED, update.CODE_NAMES[code], s.status_text()))
        return
    if op == "commit":
        con.reply("OK update state=switching")
        s.commit()  # resets: no reply after this
        return
    con.reply("OK update " + s.status_text())
