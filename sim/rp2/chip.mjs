#!/usr/bin/env node
// The emulated Pico's chip: an RP2040 (rp2040js) running a MicroPython UF2 from a 2 MiB flash
// image, with the pump's bench wired to its pins. Started by sim/rp2/board.py, which owns the
// pseudo-terminal, the plant (reservoir, catheter pressure, battery) and the harness channel.
//
//   node chip.mjs CONFIG_JSON
//
// CONFIG_JSON names two inherited sockets: control_fd, the control channel (one JSON object per
// line each way, see README.md beside this file), and serial_fd, the USB CDC line (raw bytes).
//
// What rp2040js 1.4.1 does not model, and what this file does instead:
// - Flash program and erase: the SSI ignores those commands, so littlefs would never persist.
//   The bootrom's flash_range_erase and flash_range_program entries are replaced by BKPT
//   instructions and done here, on the image in memory and at once in the image file, so a
//   process killed at any instant leaves the file exactly as the flash was (a power cut).
// - The watchdog: when it bites, rp2040js re-arms its alarm at the same instant and never returns.
//   The chip is re-created instead, keeping the flash, the scratch registers and REASON, as a
//   watchdog reset does on silicon (so machine.reset_cause() reads as on a Pico).
// - The UART raises its TX interrupt on every register access; a PL011 raises it when a byte
//   leaves the FIFO. Without the fix machine.UART spins in its interrupt handler for ever.
// - USB OUT transfers: the device re-arms its OUT endpoint in a busy loop if the host answers
//   with empty packets; the host's OUT transfer is held until there is something to send.
// - PIO: rp2040js runs each PIO block on its own zero-delay timer, a thousand instructions at a
//   time, for as long as a state machine is enabled, even one stalled on an empty FIFO: a steady
//   cost while the pump sleeps. The PIO runs in the same bursts here, but from the main loop and
//   only while one of its machines can move. (Either way PIO time is not the chip's clock: pulse
//   counts are right, step rates are not; docs/hardware.md.)
// - PWM waveforms: a running PWM slice costs one emulator alarm per edge, which would make every
//   idle millisecond expensive. The buzzer is observed from its registers instead (frequency and
//   duty as written), and the waveform alarms are switched off.
// - The QSPI chip select (IO_QSPI is a stub there, and the pad powers up with its input off, so
//   rp2.bootsel_button() read 1: BOOTSEL pressed for ever). Its control register is kept here;
//   BOOTSEL pulls the chip select low while the firmware has let it float; and a
//   flash command sent with the chip select forced (pico-sdk's flash_do_cmd) is answered, so
//   the flash's unique id (machine.unique_id(), the pump id) is the one stored beside the image.
import fs from 'fs';
import net from 'net';
import { Simulator, USBCDC, ConsoleLogger, LogLevel } from 'rp2040js';
import { decodeBlock } from 'uf2';

const cfg = JSON.parse(process.argv[2] || '{}');
const FLASH_SIZE = 2 * 1024 * 1024;
const FLASH_BASE = 0x10000000;
const CYCLE_NS = 1e9 / 125e6;
const CHUNK_INSTR = 100000;      // instructions between looks at the serial line and the harness
const PIO_BURST = 1000;          // PIO instructions per chunk, as rp2040js runs them
const BKPT_ERASE = 0x10;
const BKPT_PROGRAM = 0x11;
const WATCHDOG = 0x40058;        // peripheral keys (base address >> 12) in rp2040js
const WDT_REASON_FORCE = 2;      // WATCHDOG REASON: FORCE (CTRL.TRIGGER), not TIMER (1)
const RTC = 0x4005c;
const IO_QSPI = 0x40018;
const SSI = 0x18000;
const QSPI_SS = 1;               // the chip select's index among the six QSPI pins
const SS_PAD_RESET = 0x5a;       // PADS_QSPI GPIO_QSPI_SS at reset: input on, pull-up, schmitt
const FLASH_RUID = 0x4b;         // the flash's read-unique-id command: 4 dummy bytes, then 8

// ---- the control channel ---------------------------------------------------------------------
const control = new net.Socket({ fd: cfg.control_fd, readable: true, writable: true });
const serial = new net.Socket({ fd: cfg.serial_fd, readable: true, writable: true });
function send(obj) {
  control.write(JSON.stringify(obj) + '\n');
}
function fail(message) {
  process.stderr.write(`chip: ${message}\n`);
  process.exit(2);
}

// ---- bootrom with the flash-writing entries replaced by BKPT -----------------------------------
function romEntry(rom8, tag) {
  // The RP2040 bootrom keeps a table of (two-letter code, address) halfword pairs; its address
  // is the halfword at 0x14, and the table ends with a zero code.
  const half = (a) => rom8[a] | (rom8[a + 1] << 8);
  const code = tag.charCodeAt(0) | (tag.charCodeAt(1) << 8);
  for (let p = half(0x14); half(p); p += 4) {
    if (half(p) === code) return half(p + 2) & ~1;
  }
  fail(`the bootrom has no ${tag} entry`);
}
async function loadBootrom(path) {
  const mod = await import(new URL(`file://${path}`));
  const words = mod.bootromB1 || Object.values(mod).find((v) => v instanceof Uint32Array);
  if (!words) fail(`${path} exports no bootrom (Uint32Array)`);
  const rom = new Uint32Array(words);
  const rom8 = new Uint8Array(rom.buffer);
  for (const [tag, bkpt] of [['RE', BKPT_ERASE], ['RP', BKPT_PROGRAM]]) {
    const at = romEntry(rom8, tag);
    rom8[at] = bkpt;
    rom8[at + 1] = 0xbe; // BKPT #imm
  }
  return rom;
}

// ---- the flash image, written through ---------------------------------------------------------
function openFlash(path, uf2Path) {
  const image = new Uint8Array(FLASH_SIZE).fill(0xff);
  if (fs.existsSync(path)) image.set(fs.readFileSync(path).subarray(0, FLASH_SIZE));
  const uf2 = fs.readFileSync(uf2Path);
  let blocks = 0;
  for (let off = 0; off + 512 <= uf2.length; off += 512) {
    const b = decodeBlock(new Uint8Array(uf2.buffer, uf2.byteOffset + off, 512));
    image.set(b.payload, b.flashAddress - FLASH_BASE);
    blocks++;
  }
  if (!blocks) fail(`${uf2Path} holds no UF2 blocks`);
  const fd = fs.openSync(path, fs.existsSync(path) ? 'r+' : 'w+');
  fs.writeSync(fd, image, 0, FLASH_SIZE, 0);
  return { image, fd };
}

// ---- state that outlives one chip (a watchdog reset re-creates the chip) ------------------------
let flash;                  // { image, fd }
let rom;
let sim = null, mcu = null, cdc = null;
let vtBaseNs = (cfg.vt0_ms || 0) * 1e6;   // virtual time at this chip's clock zero
let wdtCarry = null;        // scratch registers and REASON across a watchdog reset
let resetPending = false;
let hung = false;           // the core executes nothing; clocks and the watchdog run on
let frozen = false;         // power is about to be cut: nothing runs
let programsLeft = -1;      // cut the power after this many more flash programs (-1: never)
let awaiting = null;        // an ADC conversion waiting for the bench's value
let advanceTo = -1, advanceId = null;
let speed = cfg.speed || 0; // emulated seconds per wall second; 0: as fast as it goes
let pace = null;            // { wallNs, vtNs } where pacing was last anchored
let pendingRead = null;     // a held USB OUT transfer
let instructions = 0;
let cycles = 0;             // the core's busy cycles (rp2040js's count for each instruction)
let programs = 0;           // flash page programs since this process started
const hostBytes = [];       // serial bytes waiting for room in the CDC FIFO
const bench = { pulses: 0, pulsesOff: 0, windowPulses: 0, stallAt: -1, tmcWrites: 0, tmcBad: 0,
  drvFlags: 0, drvSilent: false, drvDiag: false, ram: null };
const uid = Buffer.from(cfg.uid || '0000000000000000', 'hex');
// BOOTSEL: a person presses it when the firmware first looks after being asked to (cfg or the
// `button` request), and lets go holdMs of emulated time later.
const bootsel = { holdMs: cfg.button_hold_ms || 0, untilNs: -1, reads: 0, pressedReads: 0 };

const vtNs = () => vtBaseNs + (sim ? sim.clock.nanos : 0);
const vtMs = () => Math.floor(vtNs() / 1e6);

function boot(cause) {
  sim = new Simulator();
  mcu = sim.rp2040;
  mcu.logger = new ConsoleLogger(LogLevel.Error);
  mcu.loadBootrom(rom);
  mcu.flash.set(flash.image);
  pendingRead = null;
  awaiting = null;
  mcu.onBreak = onBreak;
  const wdt = mcu.peripherals[WATCHDOG];
  if (wdtCarry) {
    wdt.scratchData.set(wdtCarry.scratch);
    wdt.reason = wdtCarry.reason;
    wdtCarry = null;
  }
  wdt.onWatchdogTrigger = () => {
    resetPending = true;
    wdt.alarm.enabled = false; // or its alarm re-arms at the same instant for ever
    wdt.timer.enabled = false;
  };
  fixUarts();
  quietPwm();
  attachQspi();
  for (const pio of mcu.pio) pio.run = () => {};
  attachBench();
  stickRam();
  attachUsb();
  if (cfg.rtc_shift_s) shiftRtc(cfg.rtc_shift_s);
  mcu.core.PC = FLASH_BASE;
  send({ ev: 'boot', t: vtMs(), cause });
}

function onBreak(code) {
  const r = mcu.core.registers;
  if (code === BKPT_ERASE) {
    const [addr, count] = [r[0], r[1]];
    mcu.flash.fill(0xff, addr, addr + count);
    persist(addr, count);
  } else if (code === BKPT_PROGRAM) {
    const [addr, data, count] = [r[0], r[1], r[2]];
    for (let i = 0; i < count; i++) mcu.flash[addr + i] &= mcu.readUint8(data + i);
    persist(addr, count);
    programs++;
    if (programsLeft > 0 && --programsLeft === 0) freeze('programs');
  } else {
    send({ ev: 'halt', t: vtMs(), bkpt: code, pc: mcu.core.PC - 2 });
    frozen = true;
    return;
  }
  mcu.core.PC = mcu.core.LR & ~1; // return from the bootrom routine
}

function persist(addr, count) {
  flash.image.set(mcu.flash.subarray(addr, addr + count), addr);
  fs.writeSync(flash.fd, flash.image, addr, count, addr);
}

function freeze(why) {
  frozen = true;
  send({ ev: 'frozen', t: vtMs(), why });
}

function fixUarts() {
  for (const uart of mcu.uart) {
    uart.checkInterrupts = function () {
      this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
    };
    const write = uart.writeUint32.bind(uart);
    uart.writeUint32 = (offset, value) => {
      write(offset, value);
      if (offset === 0) { // UARTDR: the byte left at once, the FIFO drained
        uart.interruptStatus |= 1 << 5; // TXINTR
        uart.checkInterrupts();
      }
    };
  }
}

function quietPwm() {
  for (const ch of mcu.pwm.channels) {
    for (const alarm of [ch.alarmA, ch.alarmB, ch.alarmBottom]) {
      alarm.cancel();
      alarm.schedule = () => {};
    }
  }
}

function runPio() {
  for (const pio of mcu.pio) {
    if (pio.stopped) continue;
    for (let i = 0; i < PIO_BURST; i++) {
      pio.step();
      if (pio.machines.every((m) => !m.enabled || m.waiting)) break;
    }
  }
}

function shiftRtc(seconds) {
  const rtc = mcu.peripherals[RTC];
  rtc.baseline = new Date(rtc.baseline.getTime() + seconds * 1000);
}

// ---- the QSPI pins: BOOTSEL and the flash's commands ----------------------------------------
// rp2.bootsel_button() (MicroPython's modrp2.c) stops driving the flash's chip select (IO_QSPI
// SS CTRL, OEOVER = disable), waits a few microseconds from RAM with interrupts off, reads the
// pin through SIO GPIO_HI_IN bit 1 (low: pressed) and drives it again. On a Pico the button
// pulls the floating line low through a resistor; a driven line wins over it.
function attachQspi() {
  const ss = mcu.qspi[QSPI_SS];
  ss.padValue = SS_PAD_RESET;
  const ssi = mcu.peripherals[SSI];
  const cmd = { on: false, sent: [], replies: [] };
  const ssLevel = () => {
    const floating = ((ss.ctrl >> 12) & 3) === 2;
    ss.setInputValue(!(floating && bootsel.untilNs >= 0 && vtNs() < bootsel.untilNs));
  };
  // Only the chip select's CTRL register is kept. The other pins stay as rp2040js has them
  // (reads all ones, writes ignored): the boot ROM's flash routines poll SD1's INOVER bits as
  // their abort flag, and rp2040js's SSI, which has no FIFO levels, relies on that to end them.
  const stub = mcu.peripherals[IO_QSPI];
  const SS_CTRL = 8 * QSPI_SS + 4;
  mcu.peripherals[IO_QSPI] = {
    readUint32(offset) {
      if (offset === SS_CTRL) return ss.ctrl;
      if (offset === SS_CTRL - 4) return ss.status;
      return stub.readUint32(offset);
    },
    writeUint32(offset, value) {
      if (offset !== SS_CTRL) return stub.writeUint32(offset, value);
      const was = ss.ctrl;
      ss.ctrl = value;
      onSsCtrl(was, value);
    },
    writeUint32Atomic(offset, value, atomicType) {
      const old = this.readUint32(offset);
      const next = atomicType === 1 ? old ^ value : atomicType === 2 ? old | value
        : atomicType === 3 ? old & ~value : value;
      this.writeUint32(offset, next >>> 0);
    },
  };
  function onSsCtrl(was, now) {
    const floatWas = ((was >> 12) & 3) === 2, floatNow = ((now >> 12) & 3) === 2;
    if (floatNow && !floatWas) lookAtBootsel();
    if (floatNow !== floatWas) guardXip(floatNow);
    ssLevel();
    // A flash command framed by the chip select forced low (OUTOVER = low), then high.
    const low = ((now >> 8) & 3) === 2;
    if (low && !cmd.on) {
      cmd.on = true;
      cmd.sent = [];
      cmd.replies = [];
    } else if (!low) cmd.on = false;
  }
  const read = ssi.readUint32.bind(ssi), write = ssi.writeUint32.bind(ssi);
  ssi.writeUint32 = (offset, value) => {
    if (offset === 0x60 && cmd.on) { // DR0
      cmd.sent.push(value & 0xff);
      const i = cmd.sent.length - 1;
      const ruid = cmd.sent[0] === FLASH_RUID && i >= 5 && i < 13;
      if (cmd.replies.length < 16) cmd.replies.push(ruid ? uid[i - 5] : 0);
    }
    write(offset, value);
  };
  ssi.readUint32 = (offset) => {
    if (offset === 0x60 && cmd.on) return cmd.replies.length ? cmd.replies.shift() : 0;
    return read(offset);
  };
}

function lookAtBootsel() {
  // The firmware looks at the button: a press that was asked for starts at the first look.
  bootsel.reads++;
  if (bootsel.holdMs > 0 && bootsel.untilNs < 0) {
    bootsel.untilNs = vtNs() + bootsel.holdMs * 1e6;
    send({ ev: 'bootsel', t: vtMs(), held_ms: bootsel.holdMs });
  }
  if (bootsel.untilNs >= 0) {
    if (vtNs() < bootsel.untilNs) bootsel.pressedReads++;
    else bootsel.holdMs = 0;   // let go
  }
}

function guardXip(on) {
  // While the chip select floats, the flash cannot be read: code or data fetched from XIP then
  // is a fault on silicon (garbage), and stops the chip here with the reason.
  if (!on) {
    delete mcu.readUint16;
    delete mcu.readUint32;
    delete mcu.readUint8;
    return;
  }
  const proto = Object.getPrototypeOf(mcu);
  const xip = (a) => a >= FLASH_BASE && a < FLASH_BASE + 0x4000000;
  const trap = (fn) => function (address) {
    if (xip(address >>> 0) && !frozen) {
      send({ ev: 'halt', t: vtMs(), why: 'flash read while BOOTSEL was sampled',
        address: address >>> 0, pc: mcu.core.PC });
      frozen = true;
    }
    return fn.call(mcu, address);
  };
  mcu.readUint16 = trap(proto.readUint16);
  mcu.readUint32 = trap(proto.readUint32);
  mcu.readUint8 = trap(proto.readUint8);
}

// ---- the bench on the pins (boards/pico.py's wiring, from cfg.pins) ---------------------------
function tmcCrc(bytes, n) {
  let crc = 0;
  for (let i = 0; i < n; i++) {
    let b = bytes[i];
    for (let j = 0; j < 8; j++) {
      crc = ((crc >> 7) ^ (b & 1)) & 1 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
      b >>= 1;
    }
  }
  return crc;
}

function attachDriverUart(p) {
  // A TMC2209 on a single-wire UART: the Pico hears its own bytes; writes with a valid CRC to
  // our address are counted in IFCNT (register 2), reads are answered with valid CRCs.
  const uart = mcu.uart[p.uart];
  const regs = (bench.regs ||= new Map());
  let gram = [];
  uart.onByte = (b) => {
    uart.feedByte(b);
    if (bench.drvSilent) return; // a dead driver (or wire): the line only hears itself
    if (!gram.length && b !== 0x05) return;
    gram.push(b);
    const write = gram.length >= 3 && gram[2] & 0x80;
    const want = write ? 8 : 4;
    if (gram.length < want) return;
    const d = gram;
    gram = [];
    if (d[1] !== p.driver_addr || tmcCrc(d, want - 1) !== d[want - 1]) {
      bench.tmcBad++;
      return;
    }
    const reg = d[2] & 0x7f;
    if (write) {
      regs.set(reg, ((d[3] << 24) | (d[4] << 16) | (d[5] << 8) | d[6]) >>> 0);
      bench.ifcnt = ((bench.ifcnt || 0) + 1) & 0xff;
      bench.tmcWrites++;
      return;
    }
    // IFCNT counts the writes; IOIN carries the chip's VERSION (0x21); DRV_STATUS the health
    // flags the bench was given, with the standstill bit (31) set as a resting driver has it.
    const v = reg === 0x02 ? bench.ifcnt || 0 : reg === 0x06 ? 0x21000040
      : reg === 0x6f ? (bench.drvFlags | 0x80000000) >>> 0 : regs.get(reg) ?? 0;
    const reply = [0x05, 0xff, reg, (v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff, 0];
    reply[7] = tmcCrc(reply, 7);
    for (const x of reply) uart.feedByte(x);
  };
}

function attachMotor(p) {
  // Step pulses count only while the driver is enabled. DIAG rises at the planned step of a
  // stalled stroke and falls when the driver is disabled (that clears its latched error).
  const step = mcu.gpio[p.step], en = mcu.gpio[p.enable], diag = mcu.gpio[p.diag];
  const enabled = () => en.outputValue === !!p.en_active;
  let lastStep = false, wasOn = false;
  en.addListener(() => {
    const on = enabled();
    if (on && !wasOn) {
      bench.windowPulses = 0;
      // DIAG also says the driver's bridges are off: a shutdown, a short, an open coil
      if (bench.stallAt === 0 || bench.drvDiag) diag.setInputValue(true);
    } else if (!on && wasOn) {
      diag.setInputValue(false);
      if (bench.windowPulses) send({ ev: 'stroke', t: vtMs(), pulses: bench.windowPulses, stalled: bench.stallAt >= 0 });
      bench.windowPulses = 0;
    }
    wasOn = on;
  });
  step.addListener(() => {
    const v = step.outputValue;
    if (v && !lastStep) {
      if (enabled()) {
        bench.pulses++;
        if (++bench.windowPulses === bench.stallAt) diag.setInputValue(true);
      } else bench.pulsesOff++;
    }
    lastStep = v;
  });
}

function attachSensors(p) {
  // The pressure and battery ADCs read the plant, which lives in the parent: the conversion
  // waits (the chip does not run) until the parent answers with the value at this instant.
  const adc = mcu.adc;
  const asks = new Map([[p.pressure_adc, 'pressure'], [p.battery_adc, 'battery'], [4, 'die']]);
  const start = adc.onADCRead;
  adc.onADCRead = (ch) => {
    const what = asks.get(ch);
    if (what === undefined) return start(ch);
    adc.currentChannel = ch;
    awaiting = { ch };
    send({ ev: 'adc', t: vtMs(), what });
  };
}

function attachBuzzer(p) {
  // The buzzer's PWM slice, observed from its registers: frequency = sys / (div * (top + 1)),
  // sounding while the slice is enabled with a duty above zero.
  const slice = (p.buzzer >> 1) & 7, chanB = p.buzzer & 1;
  const ch = mcu.pwm.channels[slice];
  const write = ch.writeRegister.bind(ch);
  let last = '';
  ch.writeRegister = (offset, value) => {
    write(offset, value);
    const div = ((ch.div >> 4) & 0xff || 256) + (ch.div & 0xf) / 16;
    const top = ch.top & 0xffff;
    const cc = chanB ? ch.cc >>> 16 : ch.cc & 0xffff;
    const on = !!(ch.csr & 1) && cc > 0;
    const hz = on ? Math.round(125e6 / (div * (top + 1))) : 0;
    const now = `${hz}`;
    if (now !== last) {
      last = now;
      send({ ev: 'tone', t: vtMs(), hz });
    }
  };
}

function attachBench() {
  const p = cfg.pins;
  if (!p) return;
  attachDriverUart(p);
  attachMotor(p);
  attachSensors(p);
  attachBuzzer(p);
}

// ---- the memory test's region with a stuck bit (sim/faults.py) --------------------------------
// The firmware keeps its memory test's region in RAM and notes its address in watchdog scratch
// register 3 (boards/rp2_common.py). A stuck-at-1 bit there: after every write to RAM the bit
// is forced on again, so the march reads back a 1 where it wrote a 0.
function stickRam() {
  const f = bench.ram;
  for (const name of ['writeUint8', 'writeUint16', 'writeUint32']) delete mcu[name];
  if (!f) return;
  const proto = Object.getPrototypeOf(mcu);
  const wdt = mcu.peripherals[WATCHDOG];
  const stick = () => {
    const at = wdt.scratchData[3] + 2 * f.cell + (f.bit >> 3) - 0x20000000;
    if (at >= 0 && at < mcu.sram.length) mcu.sram[at] |= 1 << (f.bit & 7);
  };
  for (const name of ['writeUint8', 'writeUint16', 'writeUint32']) {
    const write = proto[name];
    mcu[name] = function (address, value) {
      write.call(mcu, address, value);
      stick();
    };
  }
}

function attachUsb() {
  cdc = new USBCDC(mcu.usbCtrl);
  const read = mcu.usbCtrl.onEndpointRead;
  mcu.usbCtrl.onEndpointRead = (ep, size) => {
    if (ep === cdc.outEndpoint && cdc.txFIFO.empty) {
      pendingRead = { ep, size };
      return;
    }
    read(ep, size);
  };
  cdc.__read = read;
  cdc.onDeviceConnected = () => send({ ev: 'usb', t: vtMs() });
  cdc.onSerialData = (data) => serial.write(Buffer.from(data));
}

function feedSerial() {
  while (hostBytes.length && !cdc.txFIFO.full) cdc.sendSerialByte(hostBytes.shift());
  if (pendingRead && !cdc.txFIFO.empty) {
    const { ep, size } = pendingRead;
    pendingRead = null;
    cdc.__read(ep, size);
  }
}

// ---- requests from the parent ----------------------------------------------------------------
function onRequest(req) {
  switch (req.op) {
    case 'adc': {
      if (!awaiting) return;
      const raw12 = Math.max(0, Math.min(4095, req.raw16 >> 4));
      mcu.adc.channelValues[awaiting.ch] = raw12;
      mcu.adc.sampleAlarm.schedule(mcu.adc.sampleTime * 1000);
      awaiting = null;
      break;
    }
    case 'advance':
      advanceTo = req.to_ms * 1e6;
      advanceId = req.id;
      break;
    case 'speed':
      speed = req.speed;
      pace = null;
      break;
    case 'stall':
      bench.stallAt = req.at_step;
      break;
    case 'driver':
      bench.drvFlags = req.flags >>> 0;
      bench.drvSilent = !!req.silent;
      bench.drvDiag = !!req.diag;
      break;
    case 'ram':
      bench.ram = req.on ? { cell: req.cell, bit: req.bit } : null;
      stickRam();
      break;
    case 'hang':
      hung = true;
      break;
    case 'cut_after_programs':
      programsLeft = req.n;
      break;
    case 'freeze':
      freeze('asked');
      break;
    case 'rtc_shift':
      shiftRtc(req.s);
      break;
    case 'button':
      bootsel.holdMs = req.hold_ms;
      bootsel.untilNs = -1;
      break;
    case 'stats':
      send({ id: req.id, t: vtMs(), pulses: bench.pulses, pulses_off: bench.pulsesOff,
        tmc_writes: bench.tmcWrites, tmc_bad: bench.tmcBad, instructions, cycles, programs, hung,
        frozen,
        bootsel_reads: bootsel.reads, bootsel_pressed: bootsel.pressedReads });
      break;
    default:
      send({ id: req.id, error: `unknown op ${req.op}` });
  }
  kick();
}

let ctlBuf = '';
control.on('data', (chunk) => {
  ctlBuf += chunk.toString('utf8');
  let nl;
  while ((nl = ctlBuf.indexOf('\n')) >= 0) {
    const line = ctlBuf.slice(0, nl);
    ctlBuf = ctlBuf.slice(nl + 1);
    let req = null;
    try {
      req = JSON.parse(line);
    } catch {
      continue; // the tail of a line meant for the chip before a power cut
    }
    onRequest(req);
  }
});
control.on('end', () => process.exit(0));
control.on('error', () => process.exit(0));
serial.on('data', (chunk) => {
  for (const b of chunk) hostBytes.push(b);
  kick();
});
serial.on('error', () => {});

// ---- the main loop -----------------------------------------------------------------------------
// Runs the core in chunks between looks at the world. Emulated time jumps over idle stretches
// (WFE/WFI with an alarm set) at once; with a speed N it is held to N times the wall clock since
// the last anchor, except while an `advance` runs it free.
let timer = null;
function kick() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
    setImmediate(loop);
  }
}
function later(ms) {
  timer = setTimeout(() => {
    timer = null;
    loop();
  }, ms);
}

function loop() {
  if (resetPending) {
    resetPending = false;
    const wdt = mcu.peripherals[WATCHDOG];
    wdtCarry = { scratch: wdt.scratchData.slice(), reason: wdt.reason };
    vtBaseNs = vtNs();
    hung = false;
    // The watchdog's REASON says which: its timer ran out, or the firmware set CTRL.TRIGGER
    // (pico-sdk's watchdog_reboot, MicroPython's machine.reset()): a reset it asked for.
    boot(wdt.reason === WDT_REASON_FORCE ? 'reset' : 'watchdog');
  }
  if (frozen) return later(1000); // the parent cuts the power; nothing runs until then
  if (awaiting) return later(50); // the bench answers on the control channel (kick wakes us)
  feedSerial();
  const clock = sim.clock, core = mcu.core;
  const free = speed === 0 || advanceTo >= 0;
  // How far emulated time may go in this chunk, in the clock's own nanoseconds.
  let limit = Infinity;
  if (!free) {
    if (pace === null) pace = { wallNs: Number(process.hrtime.bigint()), vtNs: vtNs() };
    limit = allowedVtNs() - vtBaseNs + 2e6; // up to 2 ms ahead of the paced clock
  }
  if (advanceTo >= 0) limit = Math.min(limit, advanceTo - vtBaseNs);
  let asleep = false;
  for (let i = 0; i < CHUNK_INSTR && clock.nanos < limit; i++) {
    if (resetPending || frozen || awaiting) break;
    if (core.waiting || hung) {
      const next = clock.nextAlarm ? clock.nanosToNextAlarm : Infinity;
      if (next === Infinity && limit === Infinity) {
        asleep = true; // nothing scheduled: only the serial line or the harness wakes it
        break;
      }
      if (clock.nanos + next > limit) {
        if (limit !== Infinity) clock.tick(limit - clock.nanos);
        asleep = true; // nothing to do before the limit
        break;
      }
      clock.tick(next);
      i += 64;
    } else {
      const c = core.executeInstruction();
      clock.tick(c * CYCLE_NS);
      cycles += c;
      instructions++;
    }
  }
  runPio();
  if (advanceTo >= 0 && vtNs() >= advanceTo) {
    send({ id: advanceId, ok: true, t: vtMs() });
    advanceTo = -1;
    advanceId = null;
    pace = null; // pacing starts again from here
  }
  if (resetPending || awaiting || frozen || advanceTo >= 0) return setImmediate(loop);
  if (!free && clock.nanos >= limit) {
    // Ahead of the paced clock: wait until the wall clock catches up with the next thing that
    // happens (kick() cuts the wait short when a byte or a request arrives).
    const next = clock.nextAlarm ? clock.nanosToNextAlarm : 1e9;
    const wait = (vtNs() + (asleep ? next : 0) - allowedVtNs()) / 1e6 / speed;
    return later(Math.max(1, Math.min(1000, wait)));
  }
  if (asleep) return later(1000); // asleep with nothing scheduled: only input wakes it
  setImmediate(loop);
}

function allowedVtNs() {
  return pace.vtNs + (Number(process.hrtime.bigint()) - pace.wallNs) * speed;
}

// ---- start ------------------------------------------------------------------------------------
function stop() {
  // what this chip process ran, for chip.log: where a test's time went
  process.stderr.write(`chip: stopped at ${vtMs()} ms; ${instructions} instructions, ${cycles} ` +
    `cycles, ${programs} flash programs\n`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
rom = await loadBootrom(cfg.bootrom);
flash = openFlash(cfg.flash, cfg.uf2);
boot(cfg.cause || 'power');
loop();
