/* Four loops of xtal in C: the fit's windowed pseudo-Voigt (window_sums, below), one phase of the
 * whole-pattern fit from its strained cell to its windowed profile (phase_profile, further down;
 * the NumPy form is xtal.identify.fit.WholePatternFit.peaks + xtal.profiles.pseudo_voigt), the
 * exact renderer's near field (near_field_sums) and the ModPoly baseline's iteration
 * (modpoly_iterate; the NumPy form is xtal.numeric.modpoly).
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
        PyErr_Format(PyExc_TypeError, "xtal._window: %s must be %s (got format '%s', %zd bytes)",
                     name, kind == 'd' ? "float64" : "int64", b->view.format, b->view.itemsize);
        return -1;
    }
    if (b->view.len != n * 8) {
        PyErr_Format(PyExc_ValueError, "xtal._window: %s holds %zd items, expected %zd", name,
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

static const double PI = 3.14159265358979323846;

/* Where the windowed sums go and the profile's shape constants (see window_sums). */
typedef struct {
    const double *x;
    Py_ssize_t n;
    double eta, lor_norm, window_fwhm, taper_fwhm;
    int values_wanted, derivatives_wanted;
    double *values, *d_eta, *d_centre, *d_fwhm;
    double *d_po;              /* NULL, or one more values-like row with per-peak po_height */
    Py_ssize_t kc, kf;
} window_target;

/* Scratch for sum_windows: five rows as long as the longest window (NULL with MemoryError). */
static double *window_scratch(const int64_t *lo, const int64_t *hi, Py_ssize_t np_)
{
    Py_ssize_t longest = 1;
    for (Py_ssize_t p = 0; p < np_; p++) {
        if (hi[p] - lo[p] > longest) {
            longest = (Py_ssize_t)(hi[p] - lo[p]);
        }
    }
    double *scratch = PyMem_RawMalloc((size_t)(5 * longest + 1) * sizeof(double));
    if (scratch == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    scratch[0] = (double)longest;      /* the stride of the rows that follow */
    return scratch;
}

/* Add the windowed pseudo-Voigt of peaks p = 0..np_-1 (window [lo[p], hi[p]) of the grid) into
 * the target's rows.  Per peak: the point terms of its window into scratch, then each grid row
 * in one contiguous pass (one stream per row instead of kc + kf strided writes per point).  Runs
 * without the GIL (no Python object is touched). */
static void sum_windows(const window_target *w, Py_ssize_t np_, const double *centres,
                        const double *inv_hw, const double *height, const double *per_centre,
                        const double *per_fwhm, const double *po_height, const int64_t *lo,
                        const int64_t *hi, double *scratch)
{
    const Py_ssize_t longest = (Py_ssize_t)scratch[0], n = w->n, kc = w->kc, kf = w->kf;
    const double *x = w->x;
    double *s_val = scratch + 1, *s_eta = s_val + longest, *s_pc = s_val + 2 * longest;
    double *s_ph = s_val + 3 * longest, *s_po = s_val + 4 * longest;
    const int values_wanted = w->values_wanted, derivatives_wanted = w->derivatives_wanted;
    const int po_wanted = w->d_po != NULL && po_height != NULL;
    const double eta = w->eta;
    const double ln2 = log(2.0);
    const double pi = PI;
    const double sg = sqrt(ln2 / pi);
    const double cg = sg * (1.0 - eta);
    const double cl = w->lor_norm / pi;
    const double a_v = eta * cl, a_c = 2.0 * eta * cl, b_c = 2.0 * ln2 * cg;
    const double a_h = 0.5 * eta * cl, b_h = 0.5 * cg;
    const double t_tail = 2.0 * (w->window_fwhm - w->taper_fwhm);  /* |t| where the taper starts */
    const double w_tail = pi / (2.0 * w->taper_fwhm);
    for (Py_ssize_t p = 0; p < np_; p++) {
        const double c = centres[p], ih = inv_hw[p], hp = height[p];
        const double hpo = po_wanted ? po_height[p] : 0.0;
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
                const double shape = a_v * lor + cg * g;
                s_val[i] = hp * shape;
                if (po_wanted) {
                    s_po[i] = hpo * shape;
                }
            }
            if (derivatives_wanted) {
                s_eta[i] = hp * (cl * lor - sg * g);
                s_pc[i] = t * (a_c * lor * il + b_c * g);
                s_ph[i] = a_h * lor * (2.0 * t2 * il - 1.0) + b_h * g * (2.0 * ln2 * t2 - 1.0);
            }
        }
        if (values_wanted) {
            double *row = w->values + j0;
            for (Py_ssize_t i = 0; i < len; i++) {
                row[i] += s_val[i];
            }
            if (po_wanted) {
                row = w->d_po + j0;
                for (Py_ssize_t i = 0; i < len; i++) {
                    row[i] += s_po[i];
                }
            }
        }
        if (derivatives_wanted) {
            double *row = w->d_eta + j0;
            for (Py_ssize_t i = 0; i < len; i++) {
                row[i] += s_eta[i];
            }
            for (Py_ssize_t k = 0; k < kc; k++) {
                const double wk = per_centre[p * kc + k];
                row = w->d_centre + k * n + j0;
                for (Py_ssize_t i = 0; i < len; i++) {
                    row[i] += s_pc[i] * wk;
                }
            }
            for (Py_ssize_t k = 0; k < kf; k++) {
                const double wk = per_fwhm[p * kf + k];
                row = w->d_fwhm + k * n + j0;
                for (Py_ssize_t i = 0; i < len; i++) {
                    row[i] += s_ph[i] * wk;
                }
            }
        }
    }
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

    window_target target = {x, n, eta, lor_norm, window_fwhm, taper_fwhm, values_wanted,
                            derivatives_wanted, values, d_eta, d_centre, d_fwhm, NULL, kc, kf};
    double *scratch = window_scratch(lo, hi, np_);
    if (scratch == NULL) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    sum_windows(&target, np_, centres, inv_hw, height, per_centre, per_fwhm, NULL, lo, hi, scratch);
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

/* ---------------------------------------------------------------------------------------------
 * phase_profile: one phase of the whole-pattern fit in one call (xtal.identify.fit
 * WholePatternFit.phase_eval; its NumPy form, `peaks` + `pseudo_voigt`, is the reference and
 * tests/test_phase_profile.py compares the two).  From the strained cell: the reciprocal metric
 * and its derivatives, d and ∂d/∂q of every reflection, for every line of the beam 2θ, Caglioti
 * FWHM (floored; size broadening in quadrature), LP, the peak centre with zero shift and
 * displacement, the peaks that can touch the grid, their areas (line weight, March–Dollase
 * factor, axial-divergence satellite) and derivative factors; then the window sums above.
 * --------------------------------------------------------------------------------------------- */

/* Indices into phase_profile's `params` (float64 array; xtal/identify/fit.py fills it in order). */
enum {
    PP_U, PP_V, PP_W, PP_MIN_FWHM, PP_SIZE, PP_ZERO, PP_DISP, PP_ETA, PP_ASYM, PP_ASYM_FRACTION,
    PP_MARGIN, PP_LOR_NORM, PP_WINDOW, PP_TAPER, PP_POL_A, PP_POL_B, PP_POL_DEN, PP_COUNT
};

/* g6 = (G*11, G*22, G*33, G*12, G*13, G*23) of the cell (a, b, c in Å; α, β, γ in °) and, with
 * dg6 != NULL, ∂g6/∂q (6 × nq, row-major) = (∂g6/∂cell)(∂cell/∂q) with ∂G* = −G* ∂G G*.
 * −1 if the cell is not a cell (as xtal.simulate.reciprocal_metric would refuse it). */
static int reciprocal_g6(const double *cell, const double *dcell, Py_ssize_t nq, double *g6,
                         double *dg6)
{
    const double rad = PI / 180.0;
    const double a[3] = {cell[0], cell[1], cell[2]};
    double cs[3], sn[3];
    for (int k = 0; k < 3; k++) {
        cs[k] = cos(cell[3 + k] * rad);
        sn[k] = sin(cell[3 + k] * rad);
    }
    const double g11 = a[0] * a[0], g22 = a[1] * a[1], g33 = a[2] * a[2];
    const double g12 = a[0] * a[1] * cs[2], g13 = a[0] * a[2] * cs[1], g23 = a[1] * a[2] * cs[0];
    const double c11 = g22 * g33 - g23 * g23, c22 = g11 * g33 - g13 * g13;
    const double c33 = g11 * g22 - g12 * g12, c12 = g13 * g23 - g12 * g33;
    const double c13 = g12 * g23 - g13 * g22, c23 = g12 * g13 - g11 * g23;
    const double det = g11 * c11 + g12 * c12 + g13 * c13;
    int finite = isfinite(det);
    for (int k = 0; k < 3; k++) {
        finite = finite && isfinite(a[k]) && isfinite(cs[k]);
    }
    if (!(finite && det > 1e-12 * g11 * g22 * g33)) {
        return -1;
    }
    const double gs[3][3] = {{c11 / det, c12 / det, c13 / det}, {c12 / det, c22 / det, c23 / det},
                             {c13 / det, c23 / det, c33 / det}};
    static const int row6[6] = {0, 1, 2, 0, 0, 1}, col6[6] = {0, 1, 2, 1, 2, 2};
    static const int pair[3][2] = {{1, 2}, {0, 2}, {0, 1}};  /* axes between which α, β, γ lie */
    for (int m = 0; m < 6; m++) {
        g6[m] = gs[row6[m]][col6[m]];
    }
    if (dg6 == NULL || nq == 0) {
        return 0;
    }
    double jac[6][6];                 /* ∂g6[m]/∂cell[p] */
    for (int p = 0; p < 6; p++) {
        double dg[3][3] = {{0.0}};
        if (p < 3) {
            dg[p][p] = 2.0 * a[p];
            for (int k = 0; k < 3; k++) {
                const int i = pair[k][0], j = pair[k][1];
                if (i == p) {
                    dg[i][j] = dg[j][i] = a[j] * cs[k];
                } else if (j == p) {
                    dg[i][j] = dg[j][i] = a[i] * cs[k];
                }
            }
        } else {
            const int k = p - 3, i = pair[k][0], j = pair[k][1];
            dg[i][j] = dg[j][i] = -a[i] * a[j] * sn[k] * PI / 180.0;
        }
        double tmp[3][3], out[3][3];
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) {
                tmp[r][c] = gs[r][0] * dg[0][c] + gs[r][1] * dg[1][c] + gs[r][2] * dg[2][c];
            }
        }
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) {
                out[r][c] = tmp[r][0] * gs[0][c] + tmp[r][1] * gs[1][c] + tmp[r][2] * gs[2][c];
            }
        }
        for (int m = 0; m < 6; m++) {
            jac[m][p] = -out[row6[m]][col6[m]];
        }
    }
    for (int m = 0; m < 6; m++) {
        for (Py_ssize_t k = 0; k < nq; k++) {
            double s = 0.0;
            for (int p = 0; p < 6; p++) {
                s += jac[m][p] * dcell[p * nq + k];
            }
            dg6[m * nq + k] = s;
        }
    }
    return 0;
}

/* First index i of the sorted x[0..n) with x[i] >= v (numpy.searchsorted, side "left"). */
static Py_ssize_t lower_bound(const double *x, Py_ssize_t n, double v)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        const Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x[mid] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The peaks of one phase, in the order of the NumPy form: for each line, its main peaks in
 * reflection order, then (with asymmetry) their satellites.  Per peak while the list is built:
 * centre, FWHM, area, ∂ln(area)/∂r of the March–Dollase factor, the centre's derivative factors
 * (common shift, lattice parameters, displacement) and the FWHM's (U, V, W); the window pass then
 * turns them into what sum_windows takes, in the NumPy form's order of operations. */
typedef struct {
    double *centre, *fwhm, *area, *ratio, *dcentre, *dfwhm, *shift;
    int64_t *lo, *hi;
    Py_ssize_t count;
} peak_list;

static PyObject *phase_profile(PyObject *self, PyObject *args)
{
    PyObject *o[13];
    int derivatives_wanted;
    Py_ssize_t nq;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOnp", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &nq, &derivatives_wanted)) {
        return NULL;
    }
    arg_buffer b[13];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    double *work = NULL;
    const Py_ssize_t n = PyObject_Length(o[0]), nh = PyObject_Length(o[2]);
    const Py_ssize_t n_strong = PyObject_Length(o[3]), n_po = PyObject_Length(o[4]);
    const Py_ssize_t nl = PyObject_Length(o[8]);
    if (n < 1 || nh < 0 || n_strong < 0 || n_po < 0 || nl < 1 || nq < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "phase_profile: empty grid, no line or negative sizes");
        }
        goto done;
    }
    if ((n_strong != 0 && n_strong != nh) || (n_po != 0 && n_po != nh)) {
        PyErr_SetString(PyExc_ValueError,
                        "phase_profile: strong and po hold one item per reflection or none");
        goto done;
    }
    const int textured = n_po > 0;
    const Py_ssize_t kc = 2 + nq, kf = 3;    /* centre rows: common shift, lattice, displacement */
    const Py_ssize_t n_rows = derivatives_wanted ? 1 + kc + kf + textured : 0;
    if (get_buffer(o[0], &b[0], 0, 'd', n, "x") || get_buffer(o[1], &b[1], 0, 'd', 6 * nh, "hh") ||
        get_buffer(o[2], &b[2], 0, 'd', nh, "fmult") ||
        get_buffer(o[3], &b[3], 0, 'd', n_strong, "strong") ||
        get_buffer(o[4], &b[4], 0, 'd', n_po, "po") ||
        get_buffer(o[5], &b[5], 0, 'd', n_po, "dpo") ||
        get_buffer(o[6], &b[6], 0, 'd', 6, "cell") ||
        get_buffer(o[7], &b[7], 0, 'd', 6 * nq, "dcell") ||
        get_buffer(o[8], &b[8], 0, 'd', nl, "wavelengths") ||
        get_buffer(o[9], &b[9], 0, 'd', nl, "line_weights") ||
        get_buffer(o[10], &b[10], 0, 'd', PP_COUNT, "params") ||
        get_buffer(o[11], &b[11], 1, 'd', n, "values") ||
        get_buffer(o[12], &b[12], 1, 'd', n_rows * n, "derivatives")) {
        goto done;
    }
    const double *x = b[0].view.buf, *hh = b[1].view.buf, *fmult = b[2].view.buf;
    const double *strong = n_strong ? b[3].view.buf : NULL;
    const double *po = b[4].view.buf, *dpo = b[5].view.buf, *cell = b[6].view.buf;
    const double *dcell = b[7].view.buf, *lams = b[8].view.buf, *line_w = b[9].view.buf;
    const double *prm = b[10].view.buf;
    double *values = b[11].view.buf, *rows = b[12].view.buf;
    const int deriv_d = derivatives_wanted && nq > 0;
    const int asym = prm[PP_ASYM] > 0.0;
    const Py_ssize_t max_peaks = nl * nh * (asym ? 2 : 1);

    /* one block: g6 derivatives, d and ∂d/∂q per reflection, then the peak list */
    const Py_ssize_t per_peak = 5 + kc + kf + 2;      /* doubles + the two int64 window ends */
    const size_t n_work = (size_t)(6 * nq + nh * (1 + nq) + max_peaks * per_peak + 1);
    work = PyMem_RawMalloc(n_work * sizeof(double));
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double g6[6];
    double *dg6 = work, *d = dg6 + 6 * nq, *dd = d + nh;
    if (reciprocal_g6(cell, dcell, deriv_d ? nq : 0, g6, dg6) < 0) {
        result = PyLong_FromLong(-1);        /* not a cell: the caller's NumPy form says why */
        goto done;
    }
    peak_list pk;
    pk.centre = dd + nh * nq;
    pk.fwhm = pk.centre + max_peaks;
    pk.area = pk.fwhm + max_peaks;
    pk.ratio = pk.area + max_peaks;
    pk.shift = pk.ratio + max_peaks;
    pk.dcentre = pk.shift + max_peaks;
    pk.dfwhm = pk.dcentre + max_peaks * kc;
    pk.lo = (int64_t *)(pk.dfwhm + max_peaks * kf);
    pk.hi = pk.lo + max_peaks;
    pk.count = 0;
    Py_ssize_t kept = 0;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < nh; j++) {
        const double *h = hh + 6 * j;
        double q2 = h[0] * g6[0] + h[1] * g6[1] + h[2] * g6[2] + h[3] * g6[3] + h[4] * g6[4] +
                    h[5] * g6[5];
        d[j] = 1.0 / sqrt(q2 > 1e-12 ? q2 : 1e-12);
        if (deriv_d) {
            const double f = -0.5 * d[j] * d[j] * d[j];
            for (Py_ssize_t k = 0; k < nq; k++) {
                double s = 0.0;
                for (int m = 0; m < 6; m++) {
                    s += h[m] * dg6[m * nq + k];
                }
                dd[j * nq + k] = f * s;
            }
        }
    }
    const double rad = PI / 180.0, deg = 180.0 / PI;
    const double xmin = x[0], xmax = x[n - 1];
    const double min_f2 = prm[PP_MIN_FWHM] * prm[PP_MIN_FWHM], size = prm[PP_SIZE];
    const double margin = prm[PP_MARGIN], half_window = prm[PP_WINDOW];
    const double frac = prm[PP_ASYM_FRACTION];
    for (Py_ssize_t l = 0; l < nl; l++) {
        const Py_ssize_t first = pk.count;
        for (Py_ssize_t j = 0; j < nh; j++) {
            const double s = lams[l] / (2.0 * d[j]);
            if (!(s < 0.99999) || (strong != NULL && strong[j] == 0.0)) {
                continue;
            }
            const double tth = 2.0 * (asin(s) * deg);
            const double th = (tth * rad) / 2.0;
            const double t = tan(th), cos_t = cos(th);
            const double h2 = prm[PP_U] * t * t + prm[PP_V] * t + prm[PP_W];
            double f = sqrt(h2 > min_f2 ? h2 : min_f2);
            if (size > 0.0) {
                const double sc = size / cos_t;
                f = sqrt(f * f + sc * sc);
            }
            const double c = tth + prm[PP_ZERO] + prm[PP_DISP] * cos_t;
            if (!(c > xmin - margin * f && c < xmax + margin * f)) {
                continue;
            }
            const double th_lp = (tth / 2.0) * rad;        /* as xtal.beam.lorentz_polarization */
            const double cos_2t = cos(tth * rad);
            const double c2 = cos_2t * cos_2t;
            const double sin_lp = sin(th_lp);
            double area = fmult[j] * ((prm[PP_POL_A] + prm[PP_POL_B] * c2) / prm[PP_POL_DEN] /
                                      (sin_lp * sin_lp * cos(th_lp))) * line_w[l];
            const Py_ssize_t p = pk.count++;
            pk.ratio[p] = 0.0;
            if (textured) {
                area *= po[j];
                pk.ratio[p] = dpo[j] / po[j];
            }
            pk.centre[p] = c;
            pk.fwhm[p] = f;
            pk.area[p] = area;
            if (asym) {
                double sh = -prm[PP_ASYM] / tan(tth * rad);
                pk.shift[p] = sh < -2.0 * f ? -2.0 * f : (sh > 2.0 * f ? 2.0 * f : sh);
            }
            if (derivatives_wanted) {
                double *pc = pk.dcentre + p * kc, *pf = pk.dfwhm + p * kf;
                pc[0] = 1.0;
                const double dtth_dd = -((2.0 * t / d[j]) * deg);
                for (Py_ssize_t k = 0; k < nq; k++) {
                    pc[1 + k] = dtth_dd * dd[j * nq + k];
                }
                pc[1 + nq] = cos_t;
                pf[0] = t * t / (2.0 * f);
                pf[1] = t / (2.0 * f);
                pf[2] = 1.0 / (2.0 * f);
            }
        }
        if (asym) {                    /* the satellites of this line's peaks, after them */
            const Py_ssize_t last = pk.count;
            for (Py_ssize_t p0 = first; p0 < last; p0++) {
                const Py_ssize_t p = pk.count++;
                pk.centre[p] = pk.centre[p0] + pk.shift[p0];
                pk.fwhm[p] = pk.fwhm[p0];
                pk.area[p] = pk.area[p0] * frac;
                pk.area[p0] = pk.area[p0] * (1.0 - frac);
                pk.ratio[p] = pk.ratio[p0];
                if (derivatives_wanted) {
                    memcpy(pk.dcentre + p * kc, pk.dcentre + p0 * kc, (size_t)kc * sizeof(double));
                    memcpy(pk.dfwhm + p * kf, pk.dfwhm + p0 * kf, (size_t)kf * sizeof(double));
                }
            }
        }
    }
    /* the windows (peaks with none on the grid are dropped) and the per-peak factors of
     * sum_windows, in place: fwhm → 1/half width, area → height, ratio → March–Dollase height,
     * derivative factors × slope */
    for (Py_ssize_t p = 0; p < pk.count; p++) {
        const double f = pk.fwhm[p], half = half_window * f;
        const Py_ssize_t lo = lower_bound(x, n, pk.centre[p] - half);
        const Py_ssize_t hi = lower_bound(x, n, pk.centre[p] + half);
        if (hi <= lo) {
            continue;
        }
        const double inv_hw = 2.0 / f, height = pk.area[p] * inv_hw, slope = height * inv_hw;
        pk.centre[kept] = pk.centre[p];
        pk.fwhm[kept] = inv_hw;
        pk.ratio[kept] = (pk.area[p] * pk.ratio[p]) * inv_hw;
        pk.area[kept] = height;
        if (derivatives_wanted) {
            for (Py_ssize_t k = 0; k < kc; k++) {
                pk.dcentre[kept * kc + k] = pk.dcentre[p * kc + k] * slope;
            }
            for (Py_ssize_t k = 0; k < kf; k++) {
                pk.dfwhm[kept * kf + k] = pk.dfwhm[p * kf + k] * slope;
            }
        }
        pk.lo[kept] = lo;
        pk.hi[kept] = hi;
        kept++;
    }
    Py_END_ALLOW_THREADS

    double *scratch = window_scratch(pk.lo, pk.hi, kept);
    if (scratch == NULL) {
        goto done;
    }
    /* derivative rows (only when wanted: the block is empty otherwise): η, the kc centre rows,
     * the kf FWHM rows, then r of a textured phase */
    window_target target = {x, n, prm[PP_ETA], prm[PP_LOR_NORM], prm[PP_WINDOW], prm[PP_TAPER], 1,
                            derivatives_wanted, values, NULL, NULL, NULL, NULL, kc, kf};
    if (derivatives_wanted) {
        target.d_eta = rows;
        target.d_centre = rows + n;
        target.d_fwhm = rows + (1 + kc) * n;
        target.d_po = textured ? rows + (1 + kc + kf) * n : NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    sum_windows(&target, kept, pk.centre, pk.fwhm, pk.area, pk.dcentre, pk.dfwhm, pk.ratio, pk.lo,
                pk.hi, scratch);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    result = PyLong_FromSsize_t(kept);

done:
    PyMem_RawFree(work);
    release_buffers(b, 13);
    return result;
}

/* out = a v for a row-major matrix a (rows x cols), each row's sum in plain order. */
static void matvec(const double *a, Py_ssize_t rows, Py_ssize_t cols, const double *v, double *out)
{
    for (Py_ssize_t r = 0; r < rows; r++) {
        const double *row = a + r * cols;
        double acc = 0.0;
        for (Py_ssize_t c = 0; c < cols; c++) {
            acc += row[c] * v[c];
        }
        out[r] = acc;
    }
}

/* The iteration of pybaselines' ModPoly baseline (xtal.numeric.modpoly, the NumPy form): the
 * polynomial basis V (n x m) and its pseudo-inverse P (m x n) fixed, baseline = V (P y), then again
 * and again y = min(y, baseline), baseline = V (P y) until |change| / |previous| < tol.  Same
 * steps as the NumPy form; the sums run in plain order (BLAS's may differ in the last bits).
 * y is overwritten; baseline receives the result; returns the number of passes after the first. */
static PyObject *modpoly_iterate(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    double tol;
    Py_ssize_t m, max_iter;
    if (!PyArg_ParseTuple(args, "OOOOndn", &o[0], &o[1], &o[2], &o[3], &m, &tol, &max_iter)) {
        return NULL;
    }
    arg_buffer b[4];
    memset(b, 0, sizeof(b));
    PyObject *result = NULL;
    Py_ssize_t n = PyObject_Length(o[2]);
    if (n < 1 || m < 1 || m > 64 || max_iter < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "modpoly_iterate: bad sizes");
        }
        goto done;
    }
    if (get_buffer(o[0], &b[0], 0, 'd', n * m, "vander") ||
        get_buffer(o[1], &b[1], 0, 'd', m * n, "pinv") || get_buffer(o[2], &b[2], 1, 'd', n, "y") ||
        get_buffer(o[3], &b[3], 1, 'd', n, "baseline")) {
        goto done;
    }
    const double *vander = b[0].view.buf, *pinv = b[1].view.buf;
    double *y = b[2].view.buf, *base = b[3].view.buf;
    double *old = PyMem_RawMalloc((size_t)n * sizeof(double));
    if (old == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double coef[64];
    Py_ssize_t passes = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t it = -1; it < max_iter; it++) {
        if (it >= 0) {
            memcpy(old, base, (size_t)n * sizeof(double));
            for (Py_ssize_t i = 0; i < n; i++) {      /* np.minimum: a NaN wins */
                if (base[i] < y[i] || base[i] != base[i]) {
                    y[i] = base[i];
                }
            }
        }
        matvec(pinv, m, n, y, coef);
        matvec(vander, n, m, coef, base);
        if (it < 0) {
            continue;
        }
        passes++;
        double dd = 0.0, oo = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double d = base[i] - old[i];
            dd += d * d;
            oo += old[i] * old[i];
        }
        double den = sqrt(oo) > 2.220446049250313e-16 ? sqrt(oo) : 2.220446049250313e-16;
        if (sqrt(dd) / den < tol) {
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(old);
    result = PyLong_FromSsize_t(passes);

done:
    release_buffers(b, 4);
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
    {"phase_profile", phase_profile, METH_VARARGS,
     "phase_profile(x, hh, fmult, strong, po, dpo, cell, dcell, wavelengths, line_weights, params, "
     "values, derivatives, n_lattice, derivatives_wanted)\n\n"
     "Add one phase's windowed pseudo-Voigt pattern at unit scale into values and, with "
     "derivatives_wanted, its derivative rows (eta, common shift, lattice parameters, "
     "displacement, U, V, W, March-Dollase r if textured) into derivatives; returns the number "
     "of peaks summed, or -1 if the cell is not a cell (see xtal.identify.fit)."},
    {"modpoly_iterate", modpoly_iterate, METH_VARARGS,
     "modpoly_iterate(vander, pinv, y, baseline, m, tol, max_iter)\n\n"
     "pybaselines' ModPoly iteration on a fixed basis (n x m) and its pseudo-inverse: y is "
     "overwritten, baseline receives the result; returns the passes after the first "
     "(see xtal.numeric.modpoly)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_window",
                                    "Compiled windowed pseudo-Voigt sums (see xtal.profiles).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__window(void) { return PyModule_Create(&module); }
