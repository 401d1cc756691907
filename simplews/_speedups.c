/* Optional C accelerator for simplews: WebSocket masking (RFC 6455 section 5.3).
 *
 * Built by setup.py only when a C compiler is available; simplews/frames.py
 * falls back to its pure-Python masking when this module does not import.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Inputs at least this long are masked with the GIL released. */
#define NOGIL_MIN_SIZE (256 * 1024)

static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t n, const unsigned char key[4])
{
    uint64_t key64;
    Py_ssize_t i = 0;

    /* the key repeated twice, in memory order: correct on any endianness */
    memcpy(&key64, key, 4);
    memcpy((unsigned char *)&key64 + 4, key, 4);

    /* memcpy() keeps unaligned loads and stores well-defined; compilers turn
       it into plain (often vectorised) word moves */
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        a ^= key64;
        b ^= key64;
        c ^= key64;
        d ^= key64;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
        memcpy(dst + i + 16, &c, 8);
        memcpy(dst + i + 24, &d, 8);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        a ^= key64;
        memcpy(dst + i, &a, 8);
    }
    /* i is a multiple of 8 here, so the key phase restarts at key[0] */
    for (; i < n; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, key, /)\n"
"--\n"
"\n"
"XOR ``data`` (any bytes-like object) with the 4-byte masking ``key``; return bytes.");

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    PyObject *result = NULL;
    unsigned char key_bytes[4];

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "apply_mask() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "masking key must be 4 bytes");
        goto done;
    }
    memcpy(key_bytes, key.buf, 4);
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    if (data.len >= NOGIL_MIN_SIZE) {
        /* the buffer export keeps ``data`` alive and unresizable meanwhile */
        Py_BEGIN_ALLOW_THREADS
        xor_mask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, key_bytes);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_mask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, key_bytes);
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL, apply_mask_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "simplews._speedups",
    "Optional C accelerator for simplews (WebSocket masking).",
    0,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
