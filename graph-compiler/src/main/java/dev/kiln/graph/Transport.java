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
    IN_PROCESS,
    /**
     * A file in the shared-memory directory ({@code /dev/shm} by default) that the writer's and the
     * readers' JVMs map: values are encoded into the slot once, tensors are read in place. AUTO picks it
     * when writer and readers live in different JVMs of one host; asking for it between actors of one
     * JVM is allowed (it then costs a copy per value, as it would across JVMs).
     */
    SHARED_MEMORY
}
