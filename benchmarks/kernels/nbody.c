/*
 * nbody: the classic five-body (Sun and Jovian planets) simulation.
 * Measures f64 arithmetic, sqrt and division on a small working set.
 * run(n) advances n steps of dt = 0.01 from the same start every call.
 * Checksum: the energy before and after, times 1e9, truncated and mixed.
 * The expression order is fixed and written out the same way in Python,
 * so every IEEE-754 engine gives bit-identical energies.
 */
#include "bench.h"

#define BODY_COUNT 5
#define PI 3.141592653589793
#define SOLAR_MASS (4.0 * PI * PI)
#define DAYS_PER_YEAR 365.24
#define TIME_STEP 0.01

static double pos_x[BODY_COUNT], pos_y[BODY_COUNT], pos_z[BODY_COUNT];
static double vel_x[BODY_COUNT], vel_y[BODY_COUNT], vel_z[BODY_COUNT];
static double mass[BODY_COUNT];

/* x, y, z, vx, vy, vz (per day), mass (in solar masses). */
static const double initial[BODY_COUNT][7] = {
    {0, 0, 0, 0, 0, 0, 1.0},
    {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
     9.54791938424326609e-04},
    {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
     2.85885980666130812e-04},
    {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
     4.36624404335156298e-05},
    {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
     5.15138902046611451e-05},
};

static void reset_bodies(void)
{
    for (int i = 0; i < BODY_COUNT; i++) {
        pos_x[i] = initial[i][0];
        pos_y[i] = initial[i][1];
        pos_z[i] = initial[i][2];
        vel_x[i] = initial[i][3] * DAYS_PER_YEAR;
        vel_y[i] = initial[i][4] * DAYS_PER_YEAR;
        vel_z[i] = initial[i][5] * DAYS_PER_YEAR;
        mass[i] = initial[i][6] * SOLAR_MASS;
    }
    /* Give the Sun the momentum that makes the system's total zero. */
    double px = 0.0, py = 0.0, pz = 0.0;
    for (int i = 0; i < BODY_COUNT; i++) {
        px += vel_x[i] * mass[i];
        py += vel_y[i] * mass[i];
        pz += vel_z[i] * mass[i];
    }
    vel_x[0] = -px / SOLAR_MASS;
    vel_y[0] = -py / SOLAR_MASS;
    vel_z[0] = -pz / SOLAR_MASS;
}

static void advance(double dt)
{
    for (int i = 0; i < BODY_COUNT; i++) {
        for (int j = i + 1; j < BODY_COUNT; j++) {
            double dx = pos_x[i] - pos_x[j];
            double dy = pos_y[i] - pos_y[j];
            double dz = pos_z[i] - pos_z[j];
            double dist2 = dx * dx + dy * dy + dz * dz;
            double magnitude = dt / (dist2 * __builtin_sqrt(dist2));
            double mi = mass[i] * magnitude;
            double mj = mass[j] * magnitude;
            vel_x[i] -= dx * mj;
            vel_y[i] -= dy * mj;
            vel_z[i] -= dz * mj;
            vel_x[j] += dx * mi;
            vel_y[j] += dy * mi;
            vel_z[j] += dz * mi;
        }
    }
    for (int i = 0; i < BODY_COUNT; i++) {
        pos_x[i] += dt * vel_x[i];
        pos_y[i] += dt * vel_y[i];
        pos_z[i] += dt * vel_z[i];
    }
}

static double energy(void)
{
    double e = 0.0;
    for (int i = 0; i < BODY_COUNT; i++) {
        e += 0.5 * mass[i] *
             (vel_x[i] * vel_x[i] + vel_y[i] * vel_y[i] + vel_z[i] * vel_z[i]);
        for (int j = i + 1; j < BODY_COUNT; j++) {
            double dx = pos_x[i] - pos_x[j];
            double dy = pos_y[i] - pos_y[j];
            double dz = pos_z[i] - pos_z[j];
            e -= mass[i] * mass[j] / __builtin_sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

static uint32_t energy_code(double e)
{
    return (uint32_t)(int64_t)(e * 1e9);
}

BENCH_EXPORT int32_t run(int32_t n)
{
    if (n < 0)
        return BENCH_BAD_N;
    reset_bodies();
    uint32_t hash = mix32(MIX_SEED, energy_code(energy()));
    for (int32_t step = 0; step < n; step++)
        advance(TIME_STEP);
    return (int32_t)mix32(hash, energy_code(energy()));
}
