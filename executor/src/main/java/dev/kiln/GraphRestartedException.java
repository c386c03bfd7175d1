package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * An execution was in flight when an actor of its graph died, and the graph restarted
 * ({@code CompileOptions.onActorDeath(ActorDeathPolicy.RESTART)}): this execution is lost, its
 * result will never come. The graph lives on with freshly created actors and takes new
 * executions: submit this one again if it should run (its actors' state before the death is gone).
 * The message says which actor died and of what; {@link #getCause()} is the actor's error when it
 * died in this JVM.
 */
public final class GraphRestartedException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /** The lost execution's sequence number. */
    private final long sequence;
    /** The number of the restart that lost it (1 for the graph's first). */
    private final int restart;

    /**
     * Creates the exception.
     *
     * @param message  what happened and what to do
     * @param sequence the lost execution's sequence number
     * @param restart  the number of the restart that lost it (1 for the graph's first)
     * @param cause    the actor's error, or null when it died in another JVM
     */
    public GraphRestartedException(String message, long sequence, int restart, Throwable cause) {
        super(message, cause);
        this.sequence = sequence;
        this.restart = restart;
    }

    /** {@return the lost execution's sequence number} */
    public long sequence() {
        return sequence;
    }

    /** {@return the number of the restart that lost the execution, from 1} */
    public int restart() {
        return restart;
    }
}
