# The few TMC2209 stepper-driver registers the RP2040 boards set over its single-wire UART.
#
# Pure functions that build and check datagrams, so the host tests can check them; the board
# (boards/rp2_common.py) only sends the bytes. Why the UART at all: out of the box the TMC2209's
# DIAG output reports driver errors (overheating, short circuit) but not a stall. StallGuard has
# to be switched on with a threshold (SGTHRS) and a velocity window (TCOOLTHRS); without that a
# jammed pump head would turn into silent under-delivery instead of a motor_stall alarm.
#
# Datagrams (datasheet section "UART single wire interface"), bytes in this order:
#   write: 0x05, address, register | 0x80, data (4 bytes, most significant first), CRC
#   read request: 0x05, address, register, CRC
#   read reply: 0x05, 0xFF, register, data (4 bytes), CRC
# The address (0..3) is set by the MS1/MS2 pins, which also pick the microstep resolution.
# The CRC is CRC-8 with polynomial x^8 + x^2 + x + 1 over the bytes, each shifted in least
# significant bit first, starting from 0.
from firmware.compat import const

_SYNC = const(0x05)
_REPLY_ADDR = const(0xFF)
GCONF = 0x00
IFCNT = 0x02        # counts successful writes (mod 256): how the board knows they arrived
IOIN = 0x06         # input pins, and the chip's VERSION in bits 24..31 (0x21 for a TMC2209)
DRV_STATUS = 0x6F   # the driver's health: bits 0..11 otpw, ot, s2ga, s2gb, s2vsa, s2vsb, ola,
                    # olb, t120, t143, t150, t157 (then the current and standstill, not read)
VERSION = 0x21
IHOLD_IRUN = 0x10
TCOOLTHRS = 0x14
SGTHRS = 0x40

# GCONF: I_scale_analog (bit 0, current scale from VREF), pdn_disable (bit 6, PDN_UART is the
# UART, not power-down), multistep_filt (bit 8). mstep_reg_select (bit 7) stays 0: microsteps
# come from the MS1/MS2 pins, so the wiring alone fixes STEPS_PER_REV.
GCONF_VALUE = 0x141
_TCOOLTHRS_ALL = const(0xFFFFF)  # StallGuard (and so DIAG on stall) at every speed the pump runs


def crc8(data, n, o=0):
    """The TMC UART CRC of n bytes of data from index o."""
    crc = 0
    for i in range(o, o + n):
        byte = data[i]
        for _ in range(8):
            if ((crc >> 7) ^ (byte & 1)) & 1:
                crc = ((crc << 1) ^ 0x07) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
            byte >>= 1
    return crc


def write_datagram(addr, reg, value):
    """The 8 bytes that set register reg of the driver at addr to value."""
    buf = bytearray(8)
    buf[0] = _SYNC
    buf[1] = addr
    buf[2] = reg | 0x80
    for i in range(4):
        buf[3 + i] = (value >> (24 - 8 * i)) & 0xFF
    buf[7] = crc8(buf, 7)
    return bytes(buf)


def read_request(addr, reg):
    """The 4 bytes that ask the driver at addr for register reg."""
    buf = bytearray(4)
    buf[0] = _SYNC
    buf[1] = addr
    buf[2] = reg & 0x7F
    buf[3] = crc8(buf, 3)
    return bytes(buf)


def parse_reply(data, reg):
    """The register value in an 8-byte reply, or None when the reply is not a valid answer for
    reg. `data` may start with the echo of our own request (single-wire: TX is heard on RX):
    the reply is taken from its last 8 bytes."""
    if data is None or len(data) < 8:
        return None
    r = data[len(data) - 8:]
    if r[0] != _SYNC or r[1] != _REPLY_ADDR or r[2] != reg or crc8(r, 7) != r[7]:
        return None
    return (r[3] << 24) | (r[4] << 16) | (r[5] << 8) | r[6]


def ihold_irun(ihold, irun, delay=1):
    """IHOLD_IRUN value: standstill and run current (0..31, of the VREF-set full scale)."""
    if not (0 <= ihold <= 31 and 0 <= irun <= 31 and 0 <= delay <= 15):
        raise ValueError("current settings out of range")
    return (delay << 16) | (irun << 8) | ihold


def setup_writes(addr, sgthrs, ihold, irun):
    """The (register, value) writes that make DIAG report a stall, in order."""
    if not 0 <= sgthrs <= 255:
        raise ValueError("SGTHRS is 8 bits")
    return (
        (GCONF, GCONF_VALUE),
        (IHOLD_IRUN, ihold_irun(ihold, irun)),
        (TCOOLTHRS, _TCOOLTHRS_ALL),
        (SGTHRS, sgthrs),
    )


def status_flags(data, n, reg):
    """Bits 0..15 of the register in a reply that ends data[:n] (the echo of the request may
    come first), or -1 when there is no valid reply for reg there. Reads the bytes in place:
    no slice, no big integer, so the stroke path may call it with the heap locked."""
    if n < 8:
        return -1
    o = n - 8
    if data[o] != _SYNC or data[o + 1] != _REPLY_ADDR or data[o + 2] != reg:
        return -1
    if crc8(data, 7, o) != data[o + 7]:
        return -1
    return (data[o + 5] << 8) | data[o + 6]
