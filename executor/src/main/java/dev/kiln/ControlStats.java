package dev.kiln;

/**
 * Counts of control messages a receiver dropped since it started: forged ones (a wrong MAC, or a sender that
 * never joined), replayed ones (a sequence number not above the last it accepted) and malformed ones (bytes
 * that do not decode). A count above zero means someone other than the driver or its workers is writing to
 * the control plane, or a peer is broken; each drop is also logged, rate-limited. Read them with
 * {@link Kiln#controlStats()}, {@link Kiln#workerControlStats(String)} and {@link KilnWorker#controlStats()}.
 *
 * @param forged    messages with a wrong MAC or from a sender that has not joined
 * @param replayed  authenticated messages seen before (sequence number not above the last accepted)
 * @param malformed messages that do not decode
 */
public record ControlStats(long forged, long replayed, long malformed) {

    /** No drops. */
    public static final ControlStats NONE = new ControlStats(0, 0, 0);

    /** {@return every dropped message} */
    public long dropped() {
        return forged + replayed + malformed;
    }
}
