"""The `kernel_host.variables` comm: set and get variables of __main__ from the host.

Protocol (also in contexts/python_kernel/README.md). The host opens a comm with target
`kernel_host.variables` and sends requests as the `data` of comm_open (optional) or comm_msg:

    {
      "request_id": <any JSON, optional, echoed in the reply>,
      "set":    {"name": <JSON value>, ...},              # objects -> dict, arrays -> list, ...
      "arrays": {"name": {"dtype": "float64", "shape": [2, 3], "buffer": 0, "order": "C"}},
      "delete": ["name", ...],
      "get":    ["name", ...],
      "get_format": "buffers" | "json"                     # default "buffers"
    }

`arrays` entries describe numpy arrays whose bytes are binary buffer number `buffer` of the same
message (any numpy dtype string, native byte order unless given, C order unless "F"); the array is
a view of the received bytes, not a copy. Steps run in the order set, arrays, delete, get; the
request is validated first and applied only if valid.

The kernel answers each request with one comm_msg on the same comm:

    {"status": "ok", "request_id": ..., "set": [names set], "deleted": [names],
     "values": {"name": <JSON>}, "arrays": {"name": {"dtype", "shape", "buffer"}},
     "missing": [names not defined], "errors": {"name": "why it cannot be sent"}}
    + buffers (one per entry of "arrays", in the order of their "buffer" index)

or {"status": "error", "request_id": ..., "ename": "ValueError", "evalue": "..."} with nothing
applied. With get_format "buffers", numpy arrays (numeric, bool or datetime dtypes) come back as
buffers; everything else, and everything with "json", as JSON (numpy arrays as nested lists,
numpy scalars as numbers, tuples as lists; NaN and infinities as null). Values that JSON cannot
represent are listed in "errors".
"""
import keyword
import math


class RequestError(ValueError):
    pass


def _check_name(name):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise RequestError(f"not a valid variable name: {name!r}")
    return name


def _names(request, key):
    names = request.get(key) or []
    if isinstance(names, str) or not isinstance(names, list):
        raise RequestError(f"'{key}' must be a list of names")
    return [_check_name(n) for n in names]


def _array_from_buffer(name, spec, buffers):
    import numpy as np
    if not isinstance(spec, dict):
        raise RequestError(f"arrays.{name} must be an object")
    try:
        dtype = np.dtype(spec.get("dtype", "float64"))
    except TypeError as exc:
        raise RequestError(f"arrays.{name}: unknown dtype {spec.get('dtype')!r}") from exc
    if dtype.hasobject:
        raise RequestError(f"arrays.{name}: object dtype cannot come from a buffer")
    index = spec.get("buffer", 0)
    if not isinstance(index, int) or not 0 <= index < len(buffers):
        raise RequestError(f"arrays.{name}: buffer index {index!r} out of range "
                           f"({len(buffers)} buffers received)")
    shape = spec.get("shape")
    buf = buffers[index]
    nbytes = len(memoryview(buf).cast("B"))
    if shape is None:
        if nbytes % dtype.itemsize:
            raise RequestError(f"arrays.{name}: {nbytes} bytes is not a multiple of {dtype}")
        shape = [nbytes // dtype.itemsize]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(f"arrays.{name}: shape must be a list of non-negative integers")
    count = math.prod(shape)
    if count * dtype.itemsize != nbytes:
        raise RequestError(f"arrays.{name}: shape {shape} of {dtype} needs "
                           f"{count * dtype.itemsize} bytes, buffer has {nbytes}")
    order = spec.get("order", "C")
    if order not in ("C", "F"):
        raise RequestError(f"arrays.{name}: order must be 'C' or 'F'")
    # A view of the message buffer: no copy.
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape, order=order)


def _to_json(value, depth=0):
    """A JSON-able copy of value, or raise TypeError."""
    if depth > 100:
        raise TypeError("nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_to_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"dict key of type {type(k).__name__} is not allowed in JSON")
            out[k if isinstance(k, str) else str(k)] = _to_json(v, depth + 1)
        return out
    module = type(value).__module__
    if module == "numpy":
        if hasattr(value, "tolist"):
            return _to_json(value.tolist(), depth + 1)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _is_buffer_array(value):
    if type(value).__module__ != "numpy" or type(value).__name__ != "ndarray":
        return False
    return value.dtype.kind in "biufcmM"


def handle(request, buffers, ns):
    """Processes one request; returns (reply, list of reply buffers)."""
    request_id = request.get("request_id") if isinstance(request, dict) else None
    try:
        if not isinstance(request, dict):
            raise RequestError("the request must be a JSON object")
        to_set = request.get("set") or {}
        if not isinstance(to_set, dict):
            raise RequestError("'set' must be an object")
        for name in to_set:
            _check_name(name)
        arrays = request.get("arrays") or {}
        if not isinstance(arrays, dict):
            raise RequestError("'arrays' must be an object")
        new_arrays = {_check_name(name): _array_from_buffer(name, spec, buffers)
                      for name, spec in arrays.items()}
        to_delete = _names(request, "delete")
        to_get = _names(request, "get")
        get_format = request.get("get_format", "buffers")
        if get_format not in ("buffers", "json", "auto"):
            raise RequestError("get_format must be 'buffers' or 'json'")
    except RequestError as exc:
        return {"status": "error", "request_id": request_id, "ename": "ValueError",
                "evalue": str(exc)}, []
    except Exception as exc:
        return {"status": "error", "request_id": request_id, "ename": type(exc).__name__,
                "evalue": str(exc)}, []

    ns.update(to_set)
    ns.update(new_arrays)
    deleted = [name for name in to_delete if ns.pop(name, _MISSING) is not _MISSING]

    values, out_arrays, missing, errors, out_buffers = {}, {}, [], {}, []
    for name in to_get:
        if name not in ns:
            missing.append(name)
            continue
        value = ns[name]
        if get_format != "json" and _is_buffer_array(value):
            import numpy as np
            array = np.ascontiguousarray(value)
            out_arrays[name] = {"dtype": array.dtype.str if array.dtype.byteorder == ">" else array.dtype.name,
                                "shape": list(array.shape), "buffer": len(out_buffers)}
            out_buffers.append(array.reshape(-1).view(np.uint8))  # raw bytes, any dtype
            continue
        try:
            values[name] = _to_json(value)
        except (TypeError, ValueError, RecursionError) as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    reply = {"status": "ok", "request_id": request_id, "set": list(to_set) + list(new_arrays),
             "deleted": deleted, "values": values, "arrays": out_arrays, "missing": missing,
             "errors": errors}
    return reply, out_buffers


_MISSING = object()
