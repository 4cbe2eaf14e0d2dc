// heatrig's 32-bit MicroPython: runs Python drivers on the WebAssembly port
// of MicroPython (npm @micropython/micropython-webassembly-pyscript, wasm32:
// 32-bit objects, as on the ESP32), each in a fresh interpreter, with a
// module tree copied to /lib and the device's flash to /device. Standard
// output passes through as bytes (the simulator's frames). Used by
// hil/simulator/heap32.py.
//
//   node heap32.mjs MODULES_DIR FLASH_DIR DRIVER.py [DRIVER.py ...]
//
// A driver runs in parts, split at lines "#%%", each a call of its own from
// the top level: this port collects garbage only there (ports/webassembly/
// main.c: gc_collect() sets a flag, gc_collect_top_level() acts on it when
// control is back in JavaScript), so a part that ends with gc.collect()
// leaves the next one a heap of live objects only.
import fs from "fs";
import path from "path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [modules, flash, ...drivers] = process.argv.slice(2);
let pending = [];
const flush = () => {
  if (pending.length) {
    const buf = Buffer.from(pending);
    for (let off = 0; off < buf.length; ) off += fs.writeSync(1, buf, off); // in full, before the exit
    pending = [];
  }
};

async function fresh() {
  const mp = await loadMicroPython({
    heapsize: 4 * 1024 * 1024, // grows past this as needed; the check reads gc.mem_alloc()
    stdout: (bytes) => {
      for (const b of bytes) pending.push(b);
      if (pending.length > 65536) flush();
    },
    linebuffer: false,
  });
  const copyInto = (src, dst) => {
    mp.FS.mkdir(dst);
    for (const name of fs.readdirSync(src)) {
      const from = path.join(src, name);
      const to = dst + "/" + name;
      if (fs.statSync(from).isDirectory()) copyInto(from, to);
      else mp.FS.writeFile(to, fs.readFileSync(from));
    }
  };
  copyInto(modules, "/lib");
  copyInto(flash, "/device"); // sim/mpapi/vflash.py mounts the device's flash at /flash
  return mp;
}

let code = 0;
for (const driver of drivers) {
  const mp = await fresh();
  for (const part of fs.readFileSync(driver, "utf8").split(/^#%%.*$/m)) {
    try {
      mp.runPython(part);
    } catch (error) {
      if (error.name !== "PythonError") throw error;
      flush();
      process.stderr.write(`${driver}: ${error.message}\n`);
      code = 3;
      break;
    }
  }
  flush();
}
process.exitCode = code;
