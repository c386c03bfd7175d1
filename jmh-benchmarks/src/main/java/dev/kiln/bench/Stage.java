package dev.kiln.bench;

import dev.kiln.tensor.Tensor;

/**
 * The actor every path calls: one step of a 64-bit linear congruential generator, salted per
 * actor so that four actors give four different results. Every method keeps the top 7 bits,
 * so results stay in {@code Long}'s box cache (0..127) and no path allocates boxes: what
 * {@code -prof gc} reports per execution is the runtime's own allocation. Not thread-safe (it
 * needs none: each instance is confined to one actor, handler or executor thread).
 */
final class Stage {

    private final long salt;
    /** How long {@link #work} spins before its step. */
    private final long busyNs;

    /** @param salt this actor's index; makes its results differ from the other actors' */
    Stage(long salt) {
        this(salt, 0);
    }

    /**
     * @param salt   this actor's index; makes its results differ from the other actors'
     * @param busyNs how long {@link #work} keeps the thread busy, in nanoseconds
     */
    Stage(long salt, long busyNs) {
        this.salt = salt;
        this.busyNs = busyNs;
    }

    /**
     * A call that costs time: spins (busy, on the calling thread) for the stage's {@code busyNs}, then steps.
     *
     * @param x any value
     * @return {@link #step}'s value
     */
    long work(long x) {
        long until = System.nanoTime() + busyNs;
        while (System.nanoTime() - until < 0) {
            Thread.onSpinWait();
        }
        return step(x);
    }

    /**
     * @param x any value
     * @return the next value, in [0, 127]
     */
    long step(long x) {
        return ((x ^ salt) * 6364136223846793005L + 1442695040888963407L) >>> 57;
    }

    /**
     * A method of 8 arguments: every argument changes the result.
     *
     * @return a value in [0, 127]
     */
    long mix8(long a, long b, long c, long d, long e, long f, long g, long h) {
        return step(a ^ b << 7 ^ c << 14 ^ d << 21 ^ e << 28 ^ f << 35 ^ g << 42 ^ h << 49);
    }

    /**
     * Reads the tensor's first and last 8 bytes: proof that the actor sees the tensor, without
     * a computation whose cost grows with its size.
     *
     * @param t a tensor of at least 8 bytes
     * @return a value in [0, 127]
     */
    long touch(Tensor t) {
        return step(t.getLong(0) ^ t.getLong(t.numel() - 1));
    }
}
