# JSON as the pump writes it on the wire: compact (no spaces) with every object's keys sorted, so
# one reply always has one spelling: a program can compare, log or sign it byte for byte, and a
# person reading it finds keys where they expect them. MicroPython's json.dumps has neither
# option (its dicts are unordered), hence this small encoder. Reading is json's own.
#
# It allocates (strings), as every reply does; nothing here runs on the per-stroke path.
import json as _json

loads = _json.loads


def dumps(obj):
    t = type(obj)
    if t is dict:
        parts = []
        for k in sorted(obj):
            parts.append(_json.dumps(k if type(k) is str else str(k)) + ":" + dumps(obj[k]))
        return "{" + ",".join(parts) + "}"
    if t is list or t is tuple:
        items = []
        for v in obj:
            items.append(dumps(v))
        return "[" + ",".join(items) + "]"
    return _json.dumps(obj)
