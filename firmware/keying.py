# A pump's keys, set now and then over the line (docs/security.md): `provision` (a new pump, or
# after the button was held at the pump) and `rekey` (both role keys replaced, the counters
# starting again). firmware/proto.py loads this for the request and lets it go after: the
# Pico's heap keeps room for what runs every day.
from firmware import auth, codes, updatekey
from firmware.handlers import Refusal


def _hex_arg(args, key, lo, hi):
    v = args.get(key)
    raw = auth.unhex(v) if type(v) is str else None
    if raw is None or not lo <= len(raw) <= hi:
        raise Refusal("E_ARGS", "%s must be %d to %d bytes as lower-case hex" % (key, lo, hi))
    return raw


def provision(proto, args, now, out):
    """Keys on a pump that never had any, or after the button was held at the pump."""
    app = proto.app
    keys = app.keys
    button = app.button_open(now)
    if not keys.never and not button:
        if keys.damaged:
            raise Refusal("E_LOCKED", "the key record is damaged: hold the button at the "
                          "pump while it boots, then provision it")
        raise Refusal("E_LOCKED", "the pump is already provisioned (to replace lost keys, "
                      "hold the button at the pump while it boots)")
    ck = _hex_arg(args, "clinician_key", auth.KEY_LEN, auth.KEY_LEN)
    pk = _hex_arg(args, "patient_key", auth.KEY_LEN, auth.KEY_LEN)
    if ck == pk:
        raise Refusal("E_ARGS", "the two keys must differ")
    uk = None
    if "update_key" in args:
        uk = _hex_arg(args, "update_key", updatekey.KEY_MIN, updatekey.KEY_MAX)
        have = app.upkey.modulus
        if have is not None and have != uk:
            raise Refusal("E_LOCKED", "the update key was set at the factory and never "
                          "changes over the line")
    if uk is not None and app.upkey.modulus is None and not app.upkey.set(uk):
        raise Refusal("E_INTERNAL", "could not store the update key")
    if not keys.provision(ck, pk):
        raise Refusal("E_INTERNAL", "could not store the keys")
    proto.end_sessions()
    app.provisioned(now, 3 if button else 1)
    out["provisioned"] = True
    out["update_key"] = app.upkey.modulus is not None


def rekey(proto, args, now, out):
    """New keys for both roles, derived on both sides from the clinician key and this
    nonce; both counters start again. Every session ends (the reply is signed with the old
    key, which the host still holds)."""
    nonce = _hex_arg(args, "nonce", 16, 64)
    if not proto.app.keys.rekey(nonce):
        raise Refusal("E_INTERNAL", "could not store the new keys")
    proto.end_sessions()
    proto.app.events_add(codes.EV_KEYS, now, 2, 0)
    out["rekeyed"] = True
    out["ctr"] = 0
