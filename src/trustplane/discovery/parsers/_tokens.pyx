# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""What CEF, W3C and Squid lines hold, found in one pass over their bytes.

polars' string kernels need several passes per line to find them (a header regex, a literal find per key,
a slice, a check per value: ~1.3 us a CEF line and ~1.6 us a W3C line on 65,536 lines, docs/benchmarks.md),
and no library tokenises these formats into columns, so this module is TrustPlane's own. For CEF it finds
the wanted keys' values (what they mean stays in the parser's polars expressions); for W3C and Squid, whose
values are positional, it reads a regular line's whole record as the parser's ``parse_line`` would (time,
addresses, lower-cased host, URL, byte counts, verdict). A line it cannot vouch for is marked irregular and
goes through ``parse_line``.

Input is an Arrow ``string_view`` column of lines, as polars hands it over without copying: ``lines``
its 16-byte views (a line's size, then the line itself if it has at most 12 bytes, else its first 4 bytes,
the index of the data buffer holding it and its offset there) and ``buffers`` its data buffers.

Output is, per wanted value, a ``string_view`` column too: 16 bytes a line in ``views`` and a bit a line in
``validity`` (0: absent); a value over 12 bytes is copied to its row of ``out``, next to the others (polars
reads compact columns faster than views spread over the batch). A row of ``out`` as long as all the lines
always has room (a value is part of a line, a rebuilt W3C URL is checked); the functions return how much of
each row they used.
``plain`` says every byte is printable ASCII (``scan`` tells it per block), which spares the check per line.

``scan`` and ``split`` cut a block of the file into such a column of lines without copying them."""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport fabs, modf, round as c_round
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport strtod
from libc.string cimport memchr, memcpy, memset


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The first position of byte c in s[q:b], or b: eight bytes at a time (a byte equal to c is a zero byte
       of w ^ pattern; the lowest flagged byte is always a true one), then byte by byte. */
    static inline Py_ssize_t tp_next_byte(const uint8_t *s, Py_ssize_t q, Py_ssize_t b, uint8_t c) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint64_t pattern = 0x0101010101010101ULL * c;
        while (q + 8 <= b) {
            uint64_t w;
            memcpy(&w, s + q, 8);
            w ^= pattern;
            uint64_t m = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;
            if (m)
                return q + (__builtin_ctzll(m) >> 3);
            q += 8;
        }
    #endif
        while (q < b && s[q] != c)
            q++;
        return q;
    }
    /* The first position of a space or a double quote in s[q:b], or b (the lowest byte flagged in either
       mask is a true one). */
    static inline Py_ssize_t tp_next_blank_or_quote(const uint8_t *s, Py_ssize_t q, Py_ssize_t b) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (q + 8 <= b) {
            uint64_t w, x, y;
            memcpy(&w, s + q, 8);
            x = w ^ 0x2020202020202020ULL;
            y = w ^ 0x2222222222222222ULL;
            uint64_t m = ((x - 0x0101010101010101ULL) & ~x) | ((y - 0x0101010101010101ULL) & ~y);
            m &= 0x8080808080808080ULL;
            if (m)
                return q + (__builtin_ctzll(m) >> 3);
            q += 8;
        }
    #endif
        while (q < b && s[q] != 32 && s[q] != 34)
            q++;
        return q;
    }
    """
    Py_ssize_t tp_next_byte(const uint8_t *s, Py_ssize_t q, Py_ssize_t b, uint8_t c) noexcept nogil
    Py_ssize_t tp_next_blank_or_quote(const uint8_t *s, Py_ssize_t q, Py_ssize_t b) noexcept nogil


cdef struct Lines:
    const uint8_t *views
    Py_ssize_t count
    const uint8_t **data
    Py_ssize_t bytes


cdef inline const uint8_t *_line(Lines *lines, Py_ssize_t r, Py_ssize_t *size) noexcept nogil:
    cdef const uint8_t *v = lines.views + 16 * r
    cdef int32_t length, index, offset
    memcpy(&length, v, 4)
    size[0] = length
    if length <= 12:
        return v + 4
    memcpy(&index, v + 8, 4)
    memcpy(&offset, v + 12, 4)
    return lines.data[index] + offset


cdef class _Source:
    """The lines' views and data buffers, checked once: every view's line lies inside its buffer."""

    cdef Lines lines
    cdef list _held

    def __cinit__(self, const uint8_t[::1] views, buffers):
        cdef Py_ssize_t i, r, n = views.shape[0] // 16
        cdef const uint8_t[::1] held
        cdef int32_t length, index, offset
        cdef Py_ssize_t nbuffers = len(buffers)
        cdef Py_ssize_t *sizes
        cdef bint bad = False
        if views.shape[0] % 16:
            raise ValueError("views: 16 bytes a line")
        self._held = [views]
        self.lines.views = &views[0] if n else NULL
        self.lines.count = n
        self.lines.bytes = 0
        self.lines.data = <const uint8_t **> PyMem_Malloc(max(nbuffers, 1) * sizeof(uint8_t *))
        sizes = <Py_ssize_t *> PyMem_Malloc(max(nbuffers, 1) * sizeof(Py_ssize_t))
        if self.lines.data == NULL or sizes == NULL:
            PyMem_Free(sizes)
            raise MemoryError()
        for i in range(nbuffers):
            held = buffers[i]
            self._held.append(held)
            self.lines.data[i] = &held[0] if held.shape[0] else NULL
            sizes[i] = held.shape[0]
        with nogil:
            for r in range(n):
                memcpy(&length, self.lines.views + 16 * r, 4)
                if length < 0:
                    bad = True
                    break
                if length > 12:
                    memcpy(&index, self.lines.views + 16 * r + 8, 4)
                    memcpy(&offset, self.lines.views + 16 * r + 12, 4)
                    if index < 0 or index >= nbuffers or offset < 0 or offset + <Py_ssize_t> length > sizes[index]:
                        bad = True
                        break
                self.lines.bytes += length
        PyMem_Free(sizes)
        if bad:
            raise ValueError("a view outside its data buffer or with a negative size")

    def __dealloc__(self):
        PyMem_Free(self.lines.data)


def scan(const uint8_t[::1] block):
    """(whether every byte is printable ASCII or a newline, the number of newlines)."""
    cdef Py_ssize_t p, newlines = 0
    cdef uint8_t bad = 0, c
    with nogil:
        for p in range(block.shape[0]):
            c = block[p]
            bad |= (<uint8_t> (c - 32) > 94) & (c != 10)
            newlines += c == 10
    return not bad, newlines


def split(const uint8_t[::1] block, uint8_t[::1] views, int64_t[::1] sizes):
    """The block's lines (without their newlines) as string views into it (buffer 0), and each line's size
    with its newline (the last line has none unless the block ends in one). Returns the longest size."""
    cdef Py_ssize_t n = sizes.shape[0], r = 0, start = 0, end, longest = 0
    cdef const uint8_t *base = &block[0] if block.shape[0] else NULL
    cdef const uint8_t *hit
    cdef int32_t length, at
    if block.shape[0] >= 2 ** 31:
        raise ValueError("string views address at most 2 GiB")
    if views.shape[0] != 16 * n:
        raise ValueError("views: 16 bytes a line")
    if n:
        memset(&views[0], 0, views.shape[0])
    with nogil:
        while r < n and start <= block.shape[0]:
            hit = <const uint8_t *> memchr(base + start, 10, block.shape[0] - start) if start < block.shape[0] else NULL
            end = block.shape[0] if hit == NULL else hit - base
            length = <int32_t> (end - start)
            memcpy(&views[16 * r], &length, 4)
            if length <= 12:
                if length:
                    memcpy(&views[16 * r + 4], base + start, length)
            else:
                memcpy(&views[16 * r + 4], base + start, 4)
                at = <int32_t> start
                memcpy(&views[16 * r + 12], &at, 4)
            sizes[r] = end - start + (1 if hit != NULL else 0)
            if sizes[r] > longest:
                longest = sizes[r]
            start = end + 1
            r += 1
    if r != n:
        raise ValueError("fewer lines than sizes")
    return longest



# [A-Za-z0-9_.\-\[\]]: the CEF extension's key characters
cdef uint8_t _KEY_CHAR[256]
for _c in range(256):
    _KEY_CHAR[_c] = (
        (97 <= _c <= 122) or (65 <= _c <= 90) or (48 <= _c <= 57) or _c in (95, 46, 45, 91, 93)
    )


cdef inline bint _within(const uint8_t *s, Py_ssize_t n, uint8_t low, uint8_t high) noexcept nogil:
    """Every byte of ``s[:n]`` between ``low`` and ``high``: printable ASCII is 32-126, digits 48-57."""
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] < low or s[i] > high:
            return False
    return True


cdef inline void _lower(uint8_t *s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if 65 <= s[i] <= 90:
            s[i] += 32


cdef inline void _set_view(
    uint8_t *views, uint8_t *validity, Py_ssize_t r, const uint8_t *data, int32_t size, int32_t at
) noexcept nogil:
    """Line ``r``'s string view of ``size`` bytes (``views`` and ``validity`` are zeroed): ``data`` itself
    when at most 12 bytes, else its first 4 bytes and offset ``at`` in buffer 0."""
    cdef uint8_t *v = views + 16 * r
    memcpy(v, &size, 4)
    validity[r >> 3] |= <uint8_t> (1 << (r & 7))
    if size <= 12:
        if size:
            memcpy(v + 4, data, size)
    else:
        memcpy(v + 4, data, 4)
        memcpy(v + 12, &at, 4)  # buffer 0 (bytes 8-11) stays 0


cdef inline Py_ssize_t _view(
    uint8_t *views, uint8_t *validity, uint8_t *out, Py_ssize_t used, Py_ssize_t r, const uint8_t *base,
    Py_ssize_t start, Py_ssize_t end, bint lower=False,
) noexcept nogil:
    """Line ``r``'s value ``base[start:end]`` as a string view, a longer value copied to ``out`` at
    ``used``; returns the new ``used``. ``lower``: ASCII letters lower-cased (in the view and the copy)."""
    cdef int32_t size = <int32_t> (end - start)
    if size <= 12:
        _set_view(views, validity, r, base + start, size, 0)
        if lower:
            _lower(views + 16 * r + 4, size)
        return used
    memcpy(out + used, base + start, size)
    if lower:
        _lower(out + used, size)
    _set_view(views, validity, r, out + used, size, <int32_t> used)
    return used + size


def _check(_Source source, uint8_t[:, ::1] views, uint8_t[:, ::1] validity, out, Py_ssize_t values):
    """The output buffers fit the lines and ``values`` values; views and validity then zeroed."""
    cdef Py_ssize_t n = source.lines.count
    if source.lines.bytes >= 2 ** 31:
        raise ValueError("string views address at most 2 GiB")
    if out.shape[0] < values or out.shape[1] < source.lines.bytes:
        raise ValueError("out: one row as long as the lines per value")
    if views.shape[0] < values or views.shape[1] != 16 * n:
        raise ValueError("views: one row of 16 bytes a line per value")
    if validity.shape[0] < values or validity.shape[1] != (n + 7) // 8:
        raise ValueError("validity: one row of a bit a line per value")
    memset(&views[0, 0], 0, views.shape[0] * views.shape[1])
    memset(&validity[0, 0], 0, validity.shape[0] * validity.shape[1])


def cef_values(
    const uint8_t[::1] lines,
    buffers,
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
    cdef _Source source = _Source(lines, buffers)
    cdef Py_ssize_t n = source.lines.count
    cdef Py_ssize_t nkeys = len(keys)
    cdef Py_ssize_t r, k, i, p, q, a, b, ext, bars, key_start, key_end, last
    cdef const uint8_t *base
    cdef const uint8_t *hit
    cdef uint8_t c
    cdef Py_ssize_t[64] key_len
    cdef const uint8_t *key_ptr[64]
    cdef Py_ssize_t[64] first
    cdef Py_ssize_t[64] until
    cdef Py_ssize_t[64] used
    if nkeys > 64:
        raise ValueError("at most 64 keys")
    _check(source, views, validity, out, nkeys)
    key_bytes = [bytes(key) for key in keys]
    for k in range(nkeys):
        key_len[k] = len(key_bytes[k])
        key_ptr[k] = key_bytes[k]
    for k in range(64):
        used[k] = 0
    with nogil:
        for r in range(n):
            base = _line(&source.lines, r, &b)
            a = 0
            shape[r] = 0
            if b == a or not (plain or _within(base + a, b - a, 32, 126)):
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



# ---- W3C: what a regular line's date, time, byte counts and filter result say --------------------------

cdef inline bint _given(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    """``w3c._present``: a value that is not empty nor ``-``."""
    return n > 0 and not (n == 1 and s[0] == 45)


cdef inline int64_t _number(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    cdef int64_t v = 0
    cdef Py_ssize_t i
    for i in range(n):
        v = v * 10 + (s[i] - 48)
    return v


cdef inline bint _count(const uint8_t *s, Py_ssize_t n, int64_t *value) noexcept nogil:
    """``to_int`` on a present value: blanks around it off, then 1 to 18 digits."""
    while n and s[0] == 32:
        s += 1
        n -= 1
    while n and s[n - 1] == 32:
        n -= 1
    if n < 1 or n > 18 or not _within(s, n, 48, 57):
        return False
    value[0] = _number(s, n)
    return True


cdef inline int64_t _days(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days from 1970-01-01 to a proleptic Gregorian date (the civil-from-days inverse)."""
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline bint _stamp(
    const uint8_t *date, Py_ssize_t dn, const uint8_t *clock, Py_ssize_t cn, int64_t *micros
) noexcept nogil:
    """The columnar W3C time rule: ``YYYY-MM-DD`` (a real date, year 1 or later) and ``HH:MM:SS`` with an
    optional ``.`` and digits; microseconds since the epoch, the fraction's first six digits."""
    cdef int64_t y, m, d, h, mi, sec, frac = 0, dim
    cdef Py_ssize_t i
    if dn != 10 or date[4] != 45 or date[7] != 45:
        return False
    if not (_within(date, 4, 48, 57) and _within(date + 5, 2, 48, 57) and _within(date + 8, 2, 48, 57)):
        return False
    if cn < 8 or clock[2] != 58 or clock[5] != 58:
        return False
    if not (_within(clock, 2, 48, 57) and _within(clock + 3, 2, 48, 57) and _within(clock + 6, 2, 48, 57)):
        return False
    if cn > 8 and (clock[8] != 46 or not _within(clock + 9, cn - 9, 48, 57)):
        return False
    y = _number(date, 4)
    m = _number(date + 5, 2)
    d = _number(date + 8, 2)
    h = _number(clock, 2)
    mi = _number(clock + 3, 2)
    sec = _number(clock + 6, 2)
    if y < 1 or m < 1 or m > 12 or d < 1 or h > 23 or mi > 59 or sec > 59:
        return False
    if m == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    elif m == 4 or m == 6 or m == 9 or m == 11:
        dim = 30
    else:
        dim = 31
    if d > dim:
        return False
    for i in range(6):
        frac = frac * 10 + (clock[9 + i] - 48 if 9 + i < cn else 0)
    micros[0] = ((_days(y, m, d) * 24 + h) * 60 + mi) * 60 * 1000000 + sec * 1000000 + frac
    return True


cdef inline bint _upper_is(const uint8_t *s, Py_ssize_t n, const char *word, Py_ssize_t wn) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint8_t c
    if n != wn:
        return False
    for i in range(n):
        c = s[i]
        if 97 <= c <= 122:
            c -= 32
        if c != <uint8_t> word[i]:
            return False
    return True


cdef inline bint _upper_holds(const uint8_t *s, Py_ssize_t n, const char *word, Py_ssize_t wn) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n - wn + 1):
        if _upper_is(s + i, wn, word, wn):
            return True
    return False


# ---- Squid native: a regular line's record --------------------------------------------------------------

cdef double[16] _POWERS
for _c in range(16):
    _POWERS[_c] = 10.0 ** _c


cdef inline bint _epoch_micros(const uint8_t *s, Py_ssize_t n, int64_t *micros) noexcept nogil:
    """Squid's ``%ts.%03tu``: digits, optionally a dot and digits, under 1e11 seconds; the microseconds as
    Python's ``datetime.fromtimestamp(float(text))`` has them (the float's fraction, rounded half to even)."""
    cdef char[64] text
    cdef double seconds, whole, fraction, rounded
    cdef Py_ssize_t i, digits, dot = -1
    cdef int64_t mantissa
    if n < 1 or n > 63:
        return False
    for i in range(n):
        if s[i] == 46 and dot < 0:
            dot = i
        elif s[i] < 48 or s[i] > 57:
            return False
    if dot == 0 or dot == n - 1:
        return False
    # at most 15 digits: the digits as an integer over a power of ten, both exact, divide correctly
    # rounded (Clinger's fast path); else the C library reads it
    digits = n - (dot >= 0)
    if digits <= 15:
        mantissa = 0
        for i in range(n):
            if i != dot:
                mantissa = mantissa * 10 + (s[i] - 48)
        seconds = <double> mantissa
        if dot >= 0:
            seconds = seconds / _POWERS[n - 1 - dot]
    else:
        memcpy(text, s, n)
        text[n] = 0
        seconds = strtod(text, NULL)
    if not seconds < 1e11:
        return False
    fraction = modf(seconds, &whole) * 1e6
    rounded = c_round(fraction)
    if fabs(fraction - rounded) == 0.5:
        rounded = 2.0 * c_round(fraction / 2.0)
    if rounded >= 1e6:
        rounded -= 1e6
        whole += 1.0
    micros[0] = <int64_t> whole * 1000000 + <int64_t> rounded
    return True


cdef inline bint _ip_like(const uint8_t *s, Py_ssize_t n) noexcept nogil:
    """``squid._is_ip``: digits and dots with a digit among them, or a colon anywhere."""
    cdef Py_ssize_t i
    cdef bint digit = False, other = False
    for i in range(n):
        if s[i] == 58:
            return True
        if 48 <= s[i] <= 57:
            digit = True
        elif s[i] != 46:
            other = True
    return digit and not other


cdef inline Py_ssize_t _find(const uint8_t *s, Py_ssize_t a, Py_ssize_t b, uint8_t c) noexcept nogil:
    """The first ``c`` in ``s[a:b]``, or -1."""
    cdef Py_ssize_t i
    for i in range(a, b):
        if s[i] == c:
            return i
    return -1


cdef inline bint _same(const uint8_t *s, const char *word, Py_ssize_t n) noexcept nogil:
    """``s[:n]`` equals ``word[:n]``."""
    cdef Py_ssize_t i
    for i in range(n):
        if s[i] != <uint8_t> word[i]:
            return False
    return True


cdef inline bint _holds(const uint8_t *s, Py_ssize_t n, const char *word, Py_ssize_t wn) noexcept nogil:
    """``word`` occurs in ``s[:n]`` (case-sensitive)."""
    cdef Py_ssize_t i
    for i in range(n - wn + 1):
        if _same(s + i, word, wn):
            return True
    return False


def squid_values(
    const uint8_t[::1] lines,
    buffers,
    uint8_t[:, ::1] views,
    uint8_t[:, ::1] validity,
    uint8_t[:, ::1] out,
    uint8_t[::1] shape,
    int64_t[:, ::1] numbers,
    uint8_t[::1] known,
    bint plain,
):
    """For each Squid native line the tokeniser can vouch for (``shape[r]`` 1), what ``squid.parse_line``
    makes of it: values 0-4 source IP, user, destination host (lower case), URL and destination IP; numbers
    0-2 the time in microseconds since the epoch, bytes down (its bit in ``known``: set when the size is a
    count) and whether it was blocked (a ``DENIED`` result code).

    A line it vouches for: printable ASCII; a timestamp (digits, optionally ``.`` and digits, under 1e11)
    then spaces, then at least nine fields, each separated by one space, none empty, no trailing blank; a
    result code with a ``/`` after its first byte; a client other than ``-``; a URL other than ``-``
    without ``@`` or ``[``, whose scheme, if any, is ``http://`` or ``https://`` (lower case) and whose host
    (to the first of ``:/?#]``, trailing dots off) is not empty; a hierarchy code holding ``/``. Any other
    line: ``shape[r]`` 0, absent values, for the parser's ``parse_line``."""
    cdef _Source source = _Source(lines, buffers)
    cdef Py_ssize_t n = source.lines.count
    cdef Py_ssize_t r, k, p, q, b, count, slash, host_start, host_end, h
    cdef const uint8_t *base
    cdef Py_ssize_t[8] fs
    cdef Py_ssize_t[8] fe
    cdef Py_ssize_t[5] used
    cdef int64_t micros, size
    cdef bint ok
    if numbers.shape[0] != 3 or numbers.shape[1] != n or known.shape[0] != (n + 7) // 8:
        raise ValueError("numbers: 3 rows of a value a line; known: a bit a line")
    _check(source, views, validity, out, 5)
    for k in range(5):
        used[k] = 0
    with nogil:
        memset(&known[0], 0, known.shape[0])
        memset(&numbers[0, 0], 0, numbers.shape[0] * numbers.shape[1] * sizeof(int64_t))
        for r in range(n):
            shape[r] = 0
            base = _line(&source.lines, r, &b)
            if b == 0 or base[b - 1] == 32 or not (plain or _within(base, b, 32, 126)):
                continue
            q = tp_next_byte(base, 0, b, 32)
            if q == b or not _epoch_micros(base, q, &micros):
                continue
            p = q
            while p < b and base[p] == 32:
                p += 1
            # the fields after the timestamp: elapsed, client, code, size, method, URL, user, hierarchy, ...
            count = 0
            ok = True
            while p < b:
                q = tp_next_byte(base, p, b, 32)
                if q == p:  # an empty field: a double space
                    ok = False
                    break
                if count < 8:
                    fs[count] = p
                    fe[count] = q
                count += 1
                p = q + 1
            if not ok or count < 9:
                continue
            # the result code (2), the client (1), the URL (5), the hierarchy code (7)
            slash = _find(base, fs[2], fe[2], 47)
            if slash <= fs[2]:
                continue
            if fe[1] - fs[1] == 1 and base[fs[1]] == 45:
                continue
            if (fe[5] - fs[5] == 1 and base[fs[5]] == 45) or _find(base, fs[5], fe[5], 64) >= 0:
                continue
            if _find(base, fs[5], fe[5], 91) >= 0 or _find(base, fs[7], fe[7], 47) < 0:
                continue
            host_start = fs[5]
            if fe[5] - fs[5] >= 8 and _same(base + fs[5], b"https://", 8):
                host_start += 8
            elif fe[5] - fs[5] >= 7 and _same(base + fs[5], b"http://", 7):
                host_start += 7
            host_end = fe[5]
            for h in range(host_start, fe[5]):
                if base[h] == 58 or base[h] == 47 or base[h] == 63 or base[h] == 35 or base[h] == 93:
                    host_end = h
                    break
            if fe[5] - host_end >= 3 and _same(base + host_end, b"://", 3):
                continue  # another scheme: parse_line's host_of decides
            h = host_end
            while h > host_start and base[h - 1] == 46:
                h -= 1
            if h == host_start:
                continue
            shape[r] = 1
            numbers[0, r] = micros
            if fe[3] - fs[3] <= 18 and _within(base + fs[3], fe[3] - fs[3], 48, 57):
                numbers[1, r] = _number(base + fs[3], fe[3] - fs[3])
                known[r >> 3] |= <uint8_t> (1 << (r & 7))
            numbers[2, r] = _holds(base + fs[2], slash - fs[2], b"DENIED", 6)
            used[0] = _view(&views[0, 0], &validity[0, 0], &out[0, 0], used[0], r, base, fs[1], fe[1])
            if not (fe[6] - fs[6] == 1 and base[fs[6]] == 45):
                used[1] = _view(&views[1, 0], &validity[1, 0], &out[1, 0], used[1], r, base, fs[6], fe[6])
            used[2] = _view(
                &views[2, 0], &validity[2, 0], &out[2, 0], used[2], r, base, host_start, h, True
            )
            if not (fe[4] - fs[4] == 7 and _same(base + fs[4], b"CONNECT", 7)):
                used[3] = _view(&views[3, 0], &validity[3, 0], &out[3, 0], used[3], r, base, fs[5], fe[5])
            slash = _find(base, fs[7], fe[7], 47) + 1
            if _ip_like(base + slash, fe[7] - slash):
                used[4] = _view(&views[4, 0], &validity[4, 0], &out[4, 0], used[4], r, base, slash, fe[7])
    return [used[k] for k in range(5)]



# ---- W3C: a regular line's record -----------------------------------------------------------------------

# The roles of ``w3c_records``'s ``spec`` rows: each row lists the field indexes a value is taken from, in
# order (the first present one counts, as ``W3cParser.parse_line``'s ``get``), -1 where a name is absent.
cdef enum:
    _DATE = 0
    _TIME = 1
    _CLIENT = 2
    _USER = 3
    _HOST = 4
    _URL = 5
    _SCHEME = 6
    _PORT = 7
    _PATH = 8
    _QUERY = 9
    _DEST_IP = 10
    _UP = 11
    _DOWN = 12
    _RESULT = 13
    _ACTION = 14
    _ROLES = 15
    _MAX_TOKENS = 256


cdef inline Py_ssize_t _after_scheme(const uint8_t *base, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Where ``base[a:b]`` goes on after a leading ``scheme://`` (``[A-Za-z][A-Za-z0-9+.-]*://``), or ``a``."""
    cdef Py_ssize_t q
    cdef uint8_t c
    if a >= b or not (65 <= base[a] <= 90 or 97 <= base[a] <= 122):
        return a
    q = a + 1
    while q < b:
        c = base[q]
        if not (65 <= c <= 90 or 97 <= c <= 122 or 48 <= c <= 57 or c == 43 or c == 46 or c == 45):
            break
        q += 1
    if q + 3 <= b and base[q] == 58 and base[q + 1] == 47 and base[q + 2] == 47:
        return q + 3
    return a


cdef struct Roles:
    Py_ssize_t count[_ROLES]
    Py_ssize_t token[_ROLES][8]


cdef inline Py_ssize_t _get(
    Roles *roles, Py_ssize_t role, const uint8_t *base, Py_ssize_t *first, Py_ssize_t *until
) noexcept nogil:
    """The token of the first present value (not empty nor ``-``) among the role's fields, or -1."""
    cdef Py_ssize_t k, t
    for k in range(roles.count[role]):
        t = roles.token[role][k]
        if _given(base + first[t], until[t] - first[t]):
            return t
    return -1


cdef inline bint _is_word(const uint8_t *s, Py_ssize_t n, const char *word) noexcept nogil:
    cdef Py_ssize_t i = 0
    while i < n and word[i] != 0 and s[i] == <uint8_t> word[i]:
        i += 1
    return i == n and word[i] == 0


cdef inline Py_ssize_t _rebuilt_size(
    Roles *spec, const uint8_t *base, Py_ssize_t *first, Py_ssize_t *until, Py_ssize_t t_host
) noexcept nogil:
    """At least the size of the URL ``w3c_records`` rebuilds from the host ``t_host`` and the other fields."""
    cdef Py_ssize_t size = 3 + until[t_host] - first[t_host], t, k
    cdef int[4] roles = [_SCHEME, _PORT, _PATH, _QUERY]
    for k in range(4):
        t = _get(spec, roles[k], base, first, until)
        size += 4 if t < 0 else 1 + until[t] - first[t]
    return size


cdef inline Py_ssize_t _put(uint8_t *out, Py_ssize_t at, const uint8_t *s, Py_ssize_t n) noexcept nogil:
    memcpy(out + at, s, n)
    return at + n


cdef inline Py_ssize_t _string(
    uint8_t *views, uint8_t *validity, uint8_t *out, Py_ssize_t start, Py_ssize_t end, Py_ssize_t r
) noexcept nogil:
    """``out[start:end]``, already written, as line ``r``'s string view; returns how much of ``out`` is
    used (bytes a short value took there are given back: the view holds them)."""
    _set_view(views, validity, r, out + start, <int32_t> (end - start), <int32_t> start)
    return start if end - start <= 12 else end


def w3c_records(
    const uint8_t[::1] lines,
    buffers,
    Py_ssize_t count,
    const int64_t[:, ::1] spec,
    uint8_t[:, ::1] views,
    uint8_t[:, ::1] validity,
    uint8_t[:, ::1] out,
    uint8_t[::1] shape,
    const uint8_t[::1] rows,
    bint plain,
    int64_t[:, ::1] facts,
    uint8_t[:, ::1] known,
):
    """For each line with ``rows[r]`` set that is regular, what ``W3cParser.parse_line`` makes of it.

    Regular: printable ASCII, not starting with ``#`` or a space nor ending in one, ``count`` values each
    separated by one space and each bare (no quote) or wholly quoted (no quote inside; the quotes are not
    part of the value); a date and a time in the columnar form (``_stamp``); and a destination: a host
    field, else a URL without ``@``, ``[`` or blanks whose host (its scheme, if any, off; to the first of
    ``:/?#]``; trailing dots off) is not empty, else (no URL) a destination IP.

    Values 0-4: the source IP; the user (blanks around it off; none for ``None``, ``NA``, ``N/A``); the
    destination host (the host field's value, else the URL's host; lower-cased); the URL (the URL field's,
    else, with a host, ``scheme://host[:port]path[?query]`` from those fields as parse_line rebuilds it);
    the destination IP. ``facts`` rows: the time in microseconds since the epoch, bytes down, bytes up
    (their bits in ``known`` rows 0 and 1: set when the value is a count) and whether the filter blocked
    it (sc-filter-result ``DENIED`` or s-action holding ``DENIED``, any case). Other lines get
    ``shape[r] = 0`` and absent values. ``count`` is at most 256."""
    cdef _Source source = _Source(lines, buffers)
    cdef Py_ssize_t n = source.lines.count
    cdef Py_ssize_t r, k, p, q, b, token, vs, ve, h, he, a, at
    cdef Py_ssize_t t_host, t_url, t_ip, t, t2
    cdef Py_ssize_t room = out.shape[1]
    cdef const uint8_t *base
    cdef const uint8_t *hit
    cdef bint ok
    cdef int64_t number
    cdef Py_ssize_t[_MAX_TOKENS] first
    cdef Py_ssize_t[_MAX_TOKENS] until
    cdef Py_ssize_t[5] used
    if count > _MAX_TOKENS:
        raise ValueError("at most 256 values a line")
    cdef Roles roles
    if spec.shape[0] != _ROLES or spec.shape[1] > 8:
        raise ValueError("spec: a row per role, at most 8 fields each")
    for r in range(_ROLES):
        roles.count[r] = 0
        for k in range(spec.shape[1]):
            if spec[r, k] >= count:
                raise ValueError("spec: a field index outside the line")
            if spec[r, k] >= 0:
                roles.token[r][roles.count[r]] = spec[r, k]
                roles.count[r] += 1
    if rows.shape[0] != n:
        raise ValueError("rows: one flag a line")
    if facts.shape[0] != 4 or facts.shape[1] != n or known.shape[0] != 2 or known.shape[1] != (n + 7) // 8:
        raise ValueError("facts: 4 rows of a value a line; known: 2 rows of a bit a line")
    _check(source, views, validity, out, 5)
    for k in range(5):
        used[k] = 0
    with nogil:
        memset(&known[0, 0], 0, known.shape[0] * known.shape[1])
        memset(&facts[0, 0], 0, facts.shape[0] * facts.shape[1] * sizeof(int64_t))
        for r in range(n):
            shape[r] = 0
            if not rows[r] or count < 1:
                continue
            base = _line(&source.lines, r, &b)
            if b == 0 or base[0] == 35 or base[0] == 32 or base[b - 1] == 32:
                continue
            if not (plain or _within(base, b, 32, 126)):
                continue
            # the values: a quote opens a value or closes it (a bare value holds none)
            ok = True
            token = 0
            p = 0
            while p < b:
                if token >= count:
                    ok = False
                    break
                if base[p] == 34:
                    hit = <const uint8_t *> memchr(base + p + 1, 34, b - p - 1) if p + 1 < b else NULL
                    if hit == NULL:
                        ok = False
                        break
                    q = hit - base
                    if q + 1 < b and base[q + 1] != 32:
                        ok = False
                        break
                    first[token] = p + 1
                    until[token] = q
                    p = q + 1
                else:
                    q = tp_next_blank_or_quote(base, p, b)
                    if q < b and base[q] == 34:
                        ok = False
                        break
                    first[token] = p
                    until[token] = q
                    p = q
                token += 1
                if p < b:
                    p += 1
                    if p >= b or base[p] == 32:
                        ok = False
                        break
            if not ok or token != count:
                continue
            # the time
            t = _get(&roles, _DATE, base, first, until)
            t2 = _get(&roles, _TIME, base, first, until)
            if t < 0 or t2 < 0 or not _stamp(
                base + first[t], until[t] - first[t], base + first[t2], until[t2] - first[t2], &facts[0, r]
            ):
                continue
            # the destination
            t_host = _get(&roles, _HOST, base, first, until)
            t_url = _get(&roles, _URL, base, first, until)
            t_ip = _get(&roles, _DEST_IP, base, first, until)
            h = he = -1
            if t_host < 0 and t_url >= 0:  # the URL's host
                vs = first[t_url]
                ve = until[t_url]
                if _find(base, vs, ve, 64) >= 0 or _find(base, vs, ve, 91) >= 0 or _find(base, vs, ve, 32) >= 0:
                    continue
                a = _after_scheme(base, vs, ve)
                he = ve
                for q in range(a, ve):
                    if base[q] == 58 or base[q] == 47 or base[q] == 63 or base[q] == 35 or base[q] == 93:
                        he = q
                        break
                h = a
                while he > h and base[he - 1] == 46:
                    he -= 1
                if he == h:
                    continue
            elif t_host < 0 and t_ip < 0:
                continue  # no destination: parse_line says so
            # a rebuilt URL always fits (its parts are values of the line, its added bytes fewer than the
            # date's and time's), which is checked all the same
            if t_host >= 0 and t_url < 0 and used[3] + _rebuilt_size(&roles, base, first, until, t_host) > room:
                continue
            shape[r] = 1
            for k in range(2):  # bytes down, bytes up
                t = _get(&roles, _DOWN if k == 0 else _UP, base, first, until)
                if t >= 0 and _count(base + first[t], until[t] - first[t], &number):
                    facts[1 + k, r] = number
                    known[k, r >> 3] |= <uint8_t> (1 << (r & 7))
            t = _get(&roles, _RESULT, base, first, until)
            if t >= 0 and _upper_is(base + first[t], until[t] - first[t], b"DENIED", 6):
                facts[3, r] = 1
            t = _get(&roles, _ACTION, base, first, until)
            if not facts[3, r] and t >= 0 and _upper_holds(base + first[t], until[t] - first[t], b"DENIED", 6):
                facts[3, r] = 1
            t = _get(&roles, _CLIENT, base, first, until)
            if t >= 0:
                used[0] = _view(&views[0, 0], &validity[0, 0], &out[0, 0], used[0], r, base, first[t], until[t])
            t = _get(&roles, _USER, base, first, until)
            if t >= 0:
                vs = first[t]
                ve = until[t]
                while vs < ve and base[vs] == 32:
                    vs += 1
                while ve > vs and base[ve - 1] == 32:
                    ve -= 1
                if not (
                    ve == vs
                    or _is_word(base + vs, ve - vs, b"-")
                    or _is_word(base + vs, ve - vs, b"None")
                    or _is_word(base + vs, ve - vs, b"NA")
                    or _is_word(base + vs, ve - vs, b"N/A")
                    or _is_word(base + vs, ve - vs, b'""')
                ):
                    used[1] = _view(&views[1, 0], &validity[1, 0], &out[1, 0], used[1], r, base, vs, ve)
            if t_host >= 0:
                used[2] = _view(
                    &views[2, 0], &validity[2, 0], &out[2, 0], used[2], r, base, first[t_host], until[t_host], True
                )
            elif h >= 0:
                used[2] = _view(&views[2, 0], &validity[2, 0], &out[2, 0], used[2], r, base, h, he, True)
            if t_url >= 0:
                used[3] = _view(&views[3, 0], &validity[3, 0], &out[3, 0], used[3], r, base, first[t_url], until[t_url])
            elif t_host >= 0:  # scheme://host[:port]path[?query]
                at = used[3]
                t = _get(&roles, _SCHEME, base, first, until)
                if t >= 0:
                    at = _put(&out[3, 0], at, base + first[t], until[t] - first[t])
                else:
                    at = _put(&out[3, 0], at, <const uint8_t *> b"http", 4)
                at = _put(&out[3, 0], at, <const uint8_t *> b"://", 3)
                at = _put(&out[3, 0], at, base + first[t_host], until[t_host] - first[t_host])
                t = _get(&roles, _PORT, base, first, until)
                if t >= 0 and not (
                    _is_word(base + first[t], until[t] - first[t], b"80")
                    or _is_word(base + first[t], until[t] - first[t], b"443")
                ):
                    at = _put(&out[3, 0], at, <const uint8_t *> b":", 1)
                    at = _put(&out[3, 0], at, base + first[t], until[t] - first[t])
                t = _get(&roles, _PATH, base, first, until)
                if t >= 0:
                    at = _put(&out[3, 0], at, base + first[t], until[t] - first[t])
                else:
                    at = _put(&out[3, 0], at, <const uint8_t *> b"/", 1)
                t = _get(&roles, _QUERY, base, first, until)
                if t >= 0:
                    if base[first[t]] != 63:
                        at = _put(&out[3, 0], at, <const uint8_t *> b"?", 1)
                    at = _put(&out[3, 0], at, base + first[t], until[t] - first[t])
                used[3] = _string(&views[3, 0], &validity[3, 0], &out[3, 0], used[3], at, r)
            if t_ip >= 0:
                used[4] = _view(&views[4, 0], &validity[4, 0], &out[4, 0], used[4], r, base, first[t_ip], until[t_ip])
    return [used[k] for k in range(5)]


def directive_marks(const uint8_t[::1] lines, buffers, uint8_t[::1] marks):
    """``marks[r]`` 1 when line ``r``'s first byte that is not a space is ``#`` (for printable ASCII lines:
    a W3C directive candidate)."""
    cdef _Source source = _Source(lines, buffers)
    cdef Py_ssize_t r, p, b
    cdef const uint8_t *base
    if marks.shape[0] != source.lines.count:
        raise ValueError("marks: one a line")
    with nogil:
        for r in range(source.lines.count):
            base = _line(&source.lines, r, &b)
            p = 0
            while p < b and base[p] == 32:
                p += 1
            marks[r] = p < b and base[p] == 35
