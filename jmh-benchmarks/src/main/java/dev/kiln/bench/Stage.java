package dev.kiln.bench;

/**
 * The actor every benchmark calls: one step of a 64-bit linear congruential generator. It
 * keeps the top 7 bits, so results stay in {@code Long}'s box cache (0..127) and no path
 * allocates boxes: what {@code -prof gc} reports per operation is the runtime's own
 * allocation. Not thread-safe (it needs none: each instance is confined to one actor or
 * executor thread).
 */
final class Stage {

    /**
     * @param x any value
     * @return the next value, in [0, 127]
     */
    long step(long x) {
        return (x * 6364136223846793005L + 1442695040888963407L) >>> 57;
    }

    /**
     * The result of {@code hops} stages applied in turn, computed on the calling thread.
     *
     * @param x    the input
     * @param hops the number of stages
     * @return the chain's result
     */
    static long chain(long x, int hops) {
        Stage s = new Stage();
        for (int i = 0; i < hops; i++) {
            x = s.step(x);
        }
        return x;
    }
}
