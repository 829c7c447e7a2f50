# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Where the values of CEF and W3C lines are, found in one pass over their bytes.

polars' string kernels need several passes per line to find them (a header regex, a literal find per key,
a slice, a check per value: ~1.3 us a CEF line and ~1.6 us a W3C line on 65,536 lines, docs/benchmarks.md),
and no library tokenises these formats into columns, so this module is TrustPlane's own. It finds
positions only; what a value means (times, hosts, counts) stays in the parsers' polars expressions, and a
line it cannot vouch for is marked irregular and goes through the parser's ``parse_line``.

Input is an Arrow ``large_string`` column's buffers: ``data`` the bytes (under 2 GiB), ``offsets`` the
``n + 1`` line boundaries. Output is, per wanted value, an Arrow ``string_view`` column: 16 bytes a line in
``views`` (the value's size, then the value itself if it has at most 12 bytes, else its first 4 bytes,
buffer 0 and its offset in that value's row of ``out``, where it is copied) and a bit a line in
``validity`` (0: absent). A row of ``out`` as long as ``data`` always has room (a value is part of a line);
the functions return how much of each row they used. Copying the longer values next to each other keeps
the columns compact: polars reads them faster than views spread over the whole batch. ``plain`` says every byte is printable ASCII (``block_lines`` knows it per block),
which spares the check per line."""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memchr, memcpy, memset



# [A-Za-z0-9_.\-\[\]]: the CEF extension's key characters
cdef uint8_t _KEY_CHAR[256]
for _c in range(256):
    _KEY_CHAR[_c] = (
        (97 <= _c <= 122) or (65 <= _c <= 90) or (48 <= _c <= 57) or _c in (95, 46, 45, 91, 93)
    )


cdef inline bint _printable(const uint8_t *line, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t p
    for p in range(size):
        if line[p] < 32 or line[p] > 126:
            return False
    return True


cdef inline Py_ssize_t _view(
    uint8_t *views, uint8_t *validity, uint8_t *out, Py_ssize_t used, Py_ssize_t r, const uint8_t *base,
    Py_ssize_t start, Py_ssize_t end,
) noexcept nogil:
    """Line ``r``'s value ``base[start:end]`` as a string view (``views`` and ``validity`` are zeroed), a
    longer value copied to ``out`` at ``used``; returns the new ``used``."""
    cdef uint8_t *v = views + 16 * r
    cdef int32_t size = <int32_t> (end - start)
    cdef int32_t at = <int32_t> used
    memcpy(v, &size, 4)
    validity[r >> 3] |= <uint8_t> (1 << (r & 7))
    if size <= 12:
        if size:
            memcpy(v + 4, base + start, size)
        return used
    memcpy(v + 4, base + start, 4)
    memcpy(v + 12, &at, 4)  # buffer 0 (bytes 8-11) stays 0
    memcpy(out + used, base + start, size)
    return used + size


def _check(data, offsets, views, validity, out, Py_ssize_t values):
    cdef Py_ssize_t n = len(offsets) - 1
    if len(data) >= 2 ** 31:
        raise ValueError("string views address at most 2 GiB")
    if out.shape[0] < values or out.shape[1] < len(data):
        raise ValueError("out: one row as long as data per value")
    if views.shape[0] < values or views.shape[1] != 16 * n:
        raise ValueError("views: one row of 16 bytes a line per value")
    if validity.shape[0] < values or validity.shape[1] != (n + 7) // 8:
        raise ValueError("validity: one row of a bit a line per value")


def cef_values(
    const uint8_t[::1] data,
    const int64_t[::1] offsets,
    keys,
    uint8_t[:, ::1] views,
    uint8_t[:, ::1] validity,
    uint8_t[:, ::1] out,
    uint8_t[::1] shape,
    bint plain,
):
    """For each line, each of ``keys`` (bytes): its first value, as ``cef.parse_extension`` reads it — a
    key is a run of key characters followed by ``=`` at the extension's start or after a space, searched
    left to right without overlap; a value runs to the space before the next key, the last one with
    trailing blanks removed. ``shape[r]`` is 1 when the line has a header (``CEF:`` and seven pipes after
    it) holding no backslash, and every byte is printable ASCII; else 0, and its values are absent."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t nkeys = len(keys)
    cdef Py_ssize_t r, k, i, p, q, a, b, ext, bars, key_start, key_end, last
    cdef const uint8_t *base = &data[0] if data.shape[0] else NULL
    cdef const uint8_t *hit
    cdef uint8_t c
    cdef Py_ssize_t[64] key_len
    cdef const uint8_t *key_ptr[64]
    cdef Py_ssize_t[64] first
    cdef Py_ssize_t[64] until
    cdef Py_ssize_t[64] used
    if nkeys > 64:
        raise ValueError("at most 64 keys")
    _check(data, offsets, views, validity, out, nkeys)
    key_bytes = [bytes(key) for key in keys]
    for k in range(nkeys):
        key_len[k] = len(key_bytes[k])
        key_ptr[k] = key_bytes[k]
    for k in range(64):
        used[k] = 0
    with nogil:
        memset(&views[0, 0], 0, views.shape[0] * views.shape[1])
        memset(&validity[0, 0], 0, validity.shape[0] * validity.shape[1])
        for r in range(n):
            a = offsets[r]
            b = offsets[r + 1]
            shape[r] = 0
            if b == a or not (plain or _printable(base + a, b - a)):
                continue
            # the header: through the seventh pipe after the first "CEF:", no backslash in it
            p = a
            while p + 4 <= b:
                if base[p] == 67 and base[p + 1] == 69 and base[p + 2] == 70 and base[p + 3] == 58:
                    break
                p += 1
            if p + 4 > b:
                continue
            ext = -1
            bars = 0
            for p in range(p + 4, b):
                c = base[p]
                if c == 92:
                    break
                if c == 124:
                    bars += 1
                    if bars == 7:
                        ext = p + 1
                        break
            if ext < 0:
                continue
            shape[r] = 1
            for k in range(nkeys):
                first[k] = -1
            # keys, left to right without overlap; each ends the value before it
            last = -1
            p = ext
            while p < b:
                q = p
                while q < b and _KEY_CHAR[base[q]]:
                    q += 1
                if q > p and q < b and base[q] == 61:
                    key_start = p
                    key_end = q
                    if last >= 0:
                        until[last] = key_start - 1
                    last = -1
                    for k in range(nkeys):  # a wanted key's first occurrence: its value starts here
                        if key_len[k] == key_end - key_start and first[k] < 0:
                            i = 0
                            while i < key_len[k] and key_ptr[k][i] == base[key_start + i]:
                                i += 1
                            if i == key_len[k]:
                                first[k] = key_end + 1
                                last = k
                                break
                    q = key_end + 1
                # the next key starts after a space
                while q < b and base[q] != 32:
                    q += 1
                p = q + 1
            if last >= 0:  # the last value: to the line's end, trailing blanks removed
                q = b
                while q > first[last] and base[q - 1] == 32:
                    q -= 1
                until[last] = q
            for k in range(nkeys):
                if first[k] >= 0:
                    used[k] = _view(
                        &views[k, 0], &validity[k, 0], &out[k, 0], used[k], r, base, first[k], until[k]
                    )
    return [used[k] for k in range(nkeys)]


def w3c_values(
    const uint8_t[::1] data,
    const int64_t[::1] offsets,
    Py_ssize_t count,
    const int64_t[::1] wanted,
    uint8_t[:, ::1] views,
    uint8_t[:, ::1] validity,
    uint8_t[:, ::1] out,
    uint8_t[::1] shape,
    const uint8_t[::1] rows,
    bint plain,
):
    """For each line with ``rows[r]`` set: whether it is regular for ``w3c._columns`` — printable ASCII,
    not starting with ``#`` or a space nor ending in one, ``count`` values each separated by one space and
    each bare (no quote) or wholly quoted (no quote inside) — and, if so, each ``wanted`` value (field
    indexes, ascending), quotes excluded. Other lines get ``shape[r] = 0`` and absent values."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t nwanted = wanted.shape[0]
    cdef Py_ssize_t r, k, p, q, a, b, token, j, vs, ve, quotes, quoted
    cdef const uint8_t *base = &data[0] if data.shape[0] else NULL
    cdef const uint8_t *hit
    cdef bint ok
    cdef Py_ssize_t[64] first
    cdef Py_ssize_t[64] until
    cdef Py_ssize_t[64] used
    if nwanted > 64:
        raise ValueError("at most 64 wanted values")
    if rows.shape[0] != n:
        raise ValueError("rows: one flag a line")
    _check(data, offsets, views, validity, out, nwanted)
    for k in range(64):
        used[k] = 0
    with nogil:
        memset(&views[0, 0], 0, views.shape[0] * views.shape[1])
        memset(&validity[0, 0], 0, validity.shape[0] * validity.shape[1])
        for r in range(n):
            shape[r] = 0
            if not rows[r]:
                continue
            a = offsets[r]
            b = offsets[r + 1]
            if b == a or base[a] == 35 or base[a] == 32 or base[b - 1] == 32:
                continue
            if not (plain or _printable(base + a, b - a)):
                continue
            # every quote must open or close a quoted value: count them all, then the quoted values
            quotes = 0
            p = a
            while p < b:
                hit = <const uint8_t *> memchr(base + p, 34, b - p)
                if hit == NULL:
                    break
                quotes += 1
                p = hit - base + 1
            quoted = 0
            ok = True
            token = 0
            j = 0
            p = a
            while p < b:
                if base[p] == 34:  # quoted: to the next quote, which must end the value
                    hit = <const uint8_t *> memchr(base + p + 1, 34, b - p - 1) if p + 1 < b else NULL
                    if hit == NULL:
                        ok = False
                        break
                    q = hit - base
                    if q + 1 < b and base[q + 1] != 32:
                        ok = False
                        break
                    quoted += 1
                    vs = p + 1
                    ve = q
                    p = q + 1
                else:
                    hit = <const uint8_t *> memchr(base + p, 32, b - p)
                    q = b if hit == NULL else hit - base
                    vs = p
                    ve = q
                    p = q
                if j < nwanted and wanted[j] == token:
                    first[j] = vs
                    until[j] = ve
                    j += 1
                token += 1
                if p < b:  # a single space, then another value
                    p += 1
                    if p >= b or base[p] == 32:
                        ok = False
                        break
            if ok and token == count and quotes == 2 * quoted:
                shape[r] = 1
                for k in range(j):
                    used[k] = _view(
                        &views[k, 0], &validity[k, 0], &out[k, 0], used[k], r, base, first[k], until[k]
                    )
    return [used[k] for k in range(nwanted)]
