package dev.kiln.graph;

/**
 * How the value of a node travels to the actors (and the driver) that read it.
 *
 * <p>Set per node with {@link Node#withTransport(Transport)}; the compiler resolves
 * {@link #AUTO} from where the writer and readers live and records the choice, with the
 * reason, in the plan.
 */
public enum Transport {
    /** Let the compiler pick the fastest transport that connects writer and readers. */
    AUTO,
    /** Writer and readers in one JVM: slots hold object references, nothing is copied. */
    IN_PROCESS
}
