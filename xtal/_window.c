/* Two loops of xtal.profiles in C: the fit's windowed pseudo-Voigt (window_sums, below) and the
 * exact renderer's near field (near_field_sums, further down).
 *
 * The windowed pseudo-Voigt, compiled: one pass over the window points computes
 * the profile and all its derivatives with no temporary arrays (the NumPy form builds about fifteen
 * per-point temporaries and sums them into the grid with SciPy's CSC kernels).  Same formulas,
 * same window and taper, same order of summation per grid point (the Gaussian is taken as 0
 * beyond 8 half widths, where it is below 2^-64 of its peak); tests/test_profile_window.py
 * compares the two (agreement to rounding).  Per window point: ~32 ns with five centre and three
 * width derivative columns against ~120 ns for the NumPy form (benchmarks/bench_kernel.py).  A plain CPython extension: the arrays come in through the buffer protocol (no NumPy
 * headers at build time), their types and sizes are checked before the loop, and the loop runs
 * without the GIL.  Built by setup.py as an optional extension: without a C compiler xtal uses the
 * NumPy form (xtal.profiles._compiled_window returns None).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} arg_buffer;

/* A C-contiguous buffer of float64 ('d') or int64 ('q'/'l', 8 bytes) holding exactly n items. */
static int get_buffer(PyObject *obj, arg_buffer *b, int writable, char kind, Py_ssize_t n,
                      const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        return -1;
    }
    b->held = 1;
    const char *fmt = b->view.format ? b->view.format : "B";
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') {
        fmt++;
    }
    int ok_type = b->view.itemsize == 8 && strlen(fmt) == 1 &&
                  (kind == 'd' ? *fmt == 'd' : (*fmt == 'q' || *fmt == 'l'));
    if (!ok_type) {
        PyErr_Format(PyExc_TypeError, "window_sums: %s must be %s (got format '%s', %zd bytes)",
                     name, kind == 'd' ? "float64" : "int64", b->view.format, b->view.itemsize);
        return -1;
    }
    if (b->view.len != n * 8) {
        PyErr_Format(PyExc_ValueError, "window_sums: %s holds %zd items, expected %zd", name,
                     b->view.len / 8, n);
        return -1;
    }
    return 0;
}

/* Release the buffers that get_buffer took. */
static void release_buffers(arg_buffer *b, int count)
{
    for (int i = 0; i < count; i++) {
        if (b[i].held) {
            PyBuffer_Release(&b[i].view);
        }
    }
}

/* 0 if every window [lo[p], hi[p]) lies on the n grid points, else -1 with a ValueError. */
static int check_windows(const int64_t *lo, const int64_t *hi, Py_ssize_t np_, Py_ssize_t n,
                         const char *function)
{
    for (Py_ssize_t p = 0; p < np_; p++) {
        if (lo[p] < 0 || hi[p] > n || lo[p] > hi[p]) {
            PyErr_Format(PyExc_ValueError, "%s: window %zd is [%lld, %lld) on %zd points", function,
                         p, (long long)lo[p], (long long)hi[p], n);
            return -1;
        }
    }
    return 0;
}

static PyObject *window_sums(PyObject *self, PyObject *args)
{
    PyObject *o[12];
    double eta, lor_norm, window_fwhm, taper_fwhm;
    int values_wanted, derivatives_wanted;
    Py_ssize_t kc, kf;
    if (!PyArg_ParseTuple(args, "OOOOOOOOddddppOOOOnn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &eta, &lor_norm, &window_fwhm, &taper_fwhm, &values_wanted,
                          &derivatives_wanted, &o[8], &o[9], &o[10], &o[11], &kc, &kf)) {
        return NULL;
    }
    arg_buffer b[12];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    Py_ssize_t n = PyObject_Length(o[0]);
    Py_ssize_t np_ = PyObject_Length(o[1]);
    Py_ssize_t m = derivatives_wanted ? n : 0;
    if (n < 0 || np_ < 0 || kc < 0 || kf < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "window_sums: negative sizes");
        }
        goto done;
    }
    if (get_buffer(o[0], &b[0], 0, 'd', n, "x") || get_buffer(o[1], &b[1], 0, 'd', np_, "centres") ||
        get_buffer(o[2], &b[2], 0, 'd', np_, "inv_hw") ||
        get_buffer(o[3], &b[3], 0, 'd', np_, "height") ||
        get_buffer(o[4], &b[4], 0, 'd', np_ * kc, "per_centre") ||
        get_buffer(o[5], &b[5], 0, 'd', np_ * kf, "per_fwhm") ||
        get_buffer(o[6], &b[6], 0, 'q', np_, "lo") || get_buffer(o[7], &b[7], 0, 'q', np_, "hi") ||
        get_buffer(o[8], &b[8], 1, 'd', n, "values") ||
        get_buffer(o[9], &b[9], 1, 'd', m, "d_eta") ||
        get_buffer(o[10], &b[10], 1, 'd', kc * m, "d_centre") ||
        get_buffer(o[11], &b[11], 1, 'd', kf * m, "d_fwhm")) {
        goto done;
    }
    const double *x = b[0].view.buf, *centres = b[1].view.buf, *inv_hw = b[2].view.buf;
    const double *height = b[3].view.buf, *per_centre = b[4].view.buf, *per_fwhm = b[5].view.buf;
    const int64_t *lo = b[6].view.buf, *hi = b[7].view.buf;
    double *values = b[8].view.buf, *d_eta = b[9].view.buf, *d_centre = b[10].view.buf;
    double *d_fwhm = b[11].view.buf;
    if (check_windows(lo, hi, np_, n, "window_sums")) {
        goto done;
    }

    /* per-peak scratch: the point terms of one window, then added to each grid row in a
     * contiguous pass (one stream per row instead of kc + kf strided writes per point) */
    Py_ssize_t longest = 0;
    for (Py_ssize_t p = 0; p < np_; p++) {
        if (hi[p] - lo[p] > longest) {
            longest = (Py_ssize_t)(hi[p] - lo[p]);
        }
    }
    double *scratch = PyMem_RawMalloc((size_t)(4 * (longest > 0 ? longest : 1)) * sizeof(double));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *s_val = scratch, *s_eta = scratch + longest, *s_pc = scratch + 2 * longest;
    double *s_ph = scratch + 3 * longest;

    Py_BEGIN_ALLOW_THREADS
    const double ln2 = log(2.0);
    const double pi = 3.14159265358979323846;
    const double sg = sqrt(ln2 / pi);
    const double cg = sg * (1.0 - eta);
    const double cl = lor_norm / pi;
    const double a_v = eta * cl, a_c = 2.0 * eta * cl, b_c = 2.0 * ln2 * cg;
    const double a_h = 0.5 * eta * cl, b_h = 0.5 * cg;
    const double t_tail = 2.0 * (window_fwhm - taper_fwhm);  /* |t| where the taper starts */
    const double w_tail = pi / (2.0 * taper_fwhm);
    for (Py_ssize_t p = 0; p < np_; p++) {
        const double c = centres[p], ih = inv_hw[p], hp = height[p];
        const Py_ssize_t j0 = (Py_ssize_t)lo[p], len = (Py_ssize_t)(hi[p] - lo[p]);
        for (Py_ssize_t i = 0; i < len; i++) {
            const double t = (x[j0 + i] - c) * ih;
            const double t2 = t * t;
            /* the Gaussian below 2^-64 of its peak (|t| > 8 half widths): 0 (far under rounding) */
            const double g = t2 < 64.0 ? exp(-ln2 * t2) : 0.0;
            const double il = 1.0 / (1.0 + t2);
            double lor = il;
            if (values_wanted) {
                const double at = fabs(t);
                if (at > t_tail) {
                    double u = (at - t_tail) * w_tail;
                    if (u > pi) {
                        u = pi;
                    }
                    lor = il * (0.5 * (1.0 + cos(u)));
                }
                s_val[i] = hp * (a_v * lor + cg * g);
            }
            if (derivatives_wanted) {
                s_eta[i] = hp * (cl * lor - sg * g);
                s_pc[i] = t * (a_c * lor * il + b_c * g);
                s_ph[i] = a_h * lor * (2.0 * t2 * il - 1.0) + b_h * g * (2.0 * ln2 * t2 - 1.0);
            }
        }
        if (values_wanted) {
            double *row = values + j0;
            for (Py_ssize_t i = 0; i < len; i++) {
                row[i] += s_val[i];
            }
        }
        if (derivatives_wanted) {
            double *row = d_eta + j0;
            for (Py_ssize_t i = 0; i < len; i++) {
                row[i] += s_eta[i];
            }
            for (Py_ssize_t k = 0; k < kc; k++) {
                const double w = per_centre[p * kc + k];
                row = d_centre + k * n + j0;
                for (Py_ssize_t i = 0; i < len; i++) {
                    row[i] += s_pc[i] * w;
                }
            }
            for (Py_ssize_t k = 0; k < kf; k++) {
                const double w = per_fwhm[p * kf + k];
                row = d_fwhm + k * n + j0;
                for (Py_ssize_t i = 0; i < len; i++) {
                    row[i] += s_ph[i] * w;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    Py_INCREF(Py_None);
    result = Py_None;

done:
    release_buffers(b, 12);
    return result;
}

/* The near field of the exact renderer (xtal.profiles._near_field): every peak's pseudo-Voigt on
 * the uniform grid x0 + j*step for |dx| <= r2, its Lorentzian part tapered by the C3 step
 * 1 - t^4 (35 - 84 t + 70 t^2 - 20 t^3), t = (|dx| - r1) / (r2 - r1), between r1 and r2; the same
 * formulas and per-point order as the NumPy form (each peak's points added in turn). */
static PyObject *near_field_sums(PyObject *self, PyObject *args)
{
    PyObject *o[7];
    double x0, step, r1, r2, four_ln2;
    if (!PyArg_ParseTuple(args, "OddOOOOOOddd", &o[0], &x0, &step, &o[1], &o[2], &o[3], &o[4],
                          &o[5], &o[6], &r1, &r2, &four_ln2)) {
        return NULL;
    }
    arg_buffer b[7];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    Py_ssize_t n = PyObject_Length(o[0]);
    Py_ssize_t np_ = PyObject_Length(o[1]);
    if (n < 0 || np_ < 0) {
        goto done;
    }
    if (get_buffer(o[0], &b[0], 1, 'd', n, "y") || get_buffer(o[1], &b[1], 0, 'd', np_, "centres") ||
        get_buffer(o[2], &b[2], 0, 'd', np_, "gauss_height") ||
        get_buffer(o[3], &b[3], 0, 'd', np_, "lorentz_height") ||
        get_buffer(o[4], &b[4], 0, 'd', np_, "inv_fwhm2") ||
        get_buffer(o[5], &b[5], 0, 'q', np_, "lo") || get_buffer(o[6], &b[6], 0, 'q', np_, "hi")) {
        goto done;
    }
    double *y = b[0].view.buf;
    const double *c = b[1].view.buf, *ga = b[2].view.buf, *la = b[3].view.buf;
    const double *inv_w2 = b[4].view.buf;
    const int64_t *lo = b[5].view.buf, *hi = b[6].view.buf;
    if (check_windows(lo, hi, np_, n, "near_field_sums")) {
        goto done;
    }
    if (!(r2 > r1)) {
        PyErr_SetString(PyExc_ValueError, "near_field_sums: r2 must exceed r1");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < np_; p++) {
        const double cp = c[p], gp = ga[p], lp = la[p], iw2 = inv_w2[p];
        for (int64_t j = lo[p]; j < hi[p]; j++) {
            const double dx = (x0 + (double)j * step) - cp;
            const double z2 = dx * dx * iw2;
            double lor = lp / (1.0 + 4.0 * z2);
            const double adx = fabs(dx);
            if (adx > r1) {
                double t = (adx - r1) / (r2 - r1);
                if (t > 1.0) {
                    t = 1.0;
                }
                const double t2 = t * t;
                lor *= 1.0 - t2 * t2 * (35.0 - 84.0 * t + 70.0 * t2 - 20.0 * t2 * t);
            }
            y[j] += gp * exp(-four_ln2 * z2) + lor;
        }
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;

done:
    release_buffers(b, 7);
    return result;
}

static PyMethodDef methods[] = {
    {"window_sums", window_sums, METH_VARARGS,
     "window_sums(x, centres, inv_hw, height, per_centre, per_fwhm, lo, hi, eta, lor_norm, "
     "window_fwhm, taper_fwhm, values_wanted, derivatives_wanted, values, d_eta, d_centre, "
     "d_fwhm, kc, kf)\n\n"
     "Add the windowed pseudo-Voigt of every peak (and, with derivatives_wanted, its derivatives) "
     "into values / d_eta / d_centre (kc x n) / d_fwhm (kf x n), in place (see xtal.profiles)."},
    {"near_field_sums", near_field_sums, METH_VARARGS,
     "near_field_sums(y, x0, step, centres, gauss_height, lorentz_height, inv_fwhm2, lo, hi, r1, "
     "r2, four_ln2)\n\nAdd the exact renderer's near field of every peak into y (uniform grid "
     "x0 + j*step), in place (see xtal.profiles._near_field)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_window",
                                    "Compiled windowed pseudo-Voigt sums (see xtal.profiles).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__window(void) { return PyModule_Create(&module); }
