# The shell's start, needed once a boot (firmware/app.py App.boot() loads it and lets it go
# after: on the Pico its code goes back to the heap): the clock and the records read from flash,
# the rooms started from them (firmware/therapy.py boot()), what the keys and the boot loader
# left to say, and the power-on self-test (firmware/post.py) before the first stroke.
from firmware import codecheck, codes, loader
from firmware.compat import const, scrub, unload
from firmware.store import RecordStore, split_clock, unpack_ints
from firmware.therapy import BOOT_WATCHDOG
from firmware.ticks import add
from firmware.updatekey import SLOT_NO

# The button is looked at for this long after a boot (firmware/app.py BUTTON_HOLD_MS).
BUTTON_LOOK_MS = 60000
# A new firmware on trial confirms itself after running this long (or when the host confirms).
_CONFIRM_MS = const(60000)


def boot(app):
    """Start the pump from the stored records (a factory-fresh pump has none): the app's
    clock, the rooms, the keys, what the loader did, the self-test."""
    hal = app.hal
    now = hal.ticks_ms()
    app.base_ts = hal.clock_ts()
    app.base_ticks = now
    cause = BOOT_WATCHDOG if hal.reset_cause() == 1 else 0
    raw = app.st_state.load()
    saved_ts = None
    if raw is not None:
        raw, saved_ts = split_clock(raw)
    state = unpack_ints(raw) if raw is not None else None
    lost = app._lost_clock(saved_ts)
    params = app.load_settings()
    # Settings are never guessed: a damaged settings record (even with an older one intact
    # in the other slot) or one that does not parse means memory_error, and no delivery
    # until the pump is reprogrammed.
    settings_bad = app.st_settings.corrupt or (params is None
                                               and app.st_settings.seq is not None)
    if settings_bad:
        params = None
    # A clock that was lost cannot tell how long the pump was off (-1): a timed stop then
    # counts on from the boot and a fill's age does not grow by the time off.
    th = app.therapy
    th.hist.run("load", now)   # (its pages; again before the next write if this fails)
    raw = app.st_journal.load()
    journal = unpack_ints(raw) if raw is not None else None
    th.boot(now, (app.base_ts % 86400) * 1000, params, state, cause,
            app.st_state.corrupt, -1 if lost is not None else app.base_ts, journal)
    if app.program_tag and params is not None and th.pump.rx is not None:
        th.hist.run("recover", now, app.program_tag, params, th.pump.rx)
    th.hist.roll(now)
    fallback = state is not None and app.st_state.corrupt
    raw = state = None   # the pump holds its own copy: two record-sized buffers freed
    if settings_bad:
        th.sup.raise_alarm(codes.AL_MEMORY_ERROR, now)
    elif fallback:
        # The older record was used: limits stay safe (one reserve taken), but what only the
        # newest held (a refill, a stop, a bolus start) is gone. Say so in the log.
        app.events.add(codes.EV_RECORD_FALLBACK, app.base_ts, 1, 0)
    if app.log_damaged:
        # The log is a record, not a dose limit: a damaged one is restarted and says so,
        # and therapy goes on.
        app.events.add(codes.EV_LOG_LOST, app.base_ts, 0, 0)
    if lost is not None:
        app.events.add(codes.EV_CLOCK_LOST, app.base_ts, lost, 0)
        th.sup.raise_alarm(codes.AL_CLOCK_LOST, now)
    _boot_keys(app, now)
    _boot_firmware(app, now)
    _self_test(app, now)
    if app.button is not None:
        app.btn_until = add(now, BUTTON_LOOK_MS)
    th.save()
    app.save_log()


def _boot_keys(app, now):
    """Keys fail closed: a record that exists and does not verify raises key_damaged (the
    protocol then refuses every keyed request); therapy goes on as programmed."""
    keys = app.keys
    sup = app.therapy.sup
    if keys.damaged:
        sup.raise_alarm(codes.AL_KEY_DAMAGED, now)
    else:
        sup.clear_alarm(codes.AL_KEY_DAMAGED, now)
    if keys.fallback:
        app.events.add(codes.EV_KEY_FALLBACK, app.base_ts, 0, 0)


def _boot_firmware(app, now):
    """What the loader did before this firmware started: log it, and start the trial's
    clock when this firmware has not confirmed yet."""
    fs = app.fs
    if fs is None:
        return
    crash = fs.read(loader.CRASH)
    st = loader.load(fs)
    app.slot = st["active"] if st is not None else loader.BASE
    trial = st is not None and st.get("tries") is not None
    if crash is not None:
        try:
            app.last_crash = crash.decode()
        except UnicodeError:
            app.last_crash = "(not UTF-8)"
        app.events.add(codes.EV_CRASH, app.base_ts, SLOT_NO.get(app.slot, 0),
                       1 if trial else 0)
        fs.remove(loader.CRASH)
    if st is not None and st.get("back"):
        back = st["back"]
        app.events.add(codes.EV_ROLLBACK, app.base_ts, SLOT_NO.get(back[0], 0),
                       1 if back[1] == "trial" else 2)
        del st["back"]
        loader.save(fs, st)
    if trial:
        app.confirm_at = add(now, _CONFIRM_MS)


def _self_test(app, now):
    """The power-on self-test (firmware/selftest.py), before the first stroke. The running
    firmware's files against its signed manifest: if they do not match, the board goes
    back to the firmware before it (as the boot loader does for a damaged slot) and
    resets into it; the base has none before it and stays, with self_test_failed raised
    (critical). The watchdog is made to reset the chip once per install."""
    failed = _post(app, now)
    scrub()
    if failed & 1 and codecheck.fall_back(app.fs, app.slot):
        app.shutdown(now)
        app.hal.reset()


def _post(app, now):
    from firmware import post   # needed once a boot: its code goes back to the heap after
    try:
        return post.run(app.therapy.checks, now, app.hal, app.fs, app.slot,
                        app.upkey.modulus, RecordStore(app.dev, "wdt"), app._before_test)
    finally:
        post = None
        unload("firmware.post")
