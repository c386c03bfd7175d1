package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * An actor is gone (its loop thread died of an error Kiln cannot recover from, its process ended, or its runtime was closed): every pending and later execution of its graphs fails with this, and the graph closes. Create new actors and compile again, or compile with {@code CompileOptions.onActorDeath(ActorDeathPolicy.RESTART)}: the graph then recreates the actor and fails only the executions in flight, with {@link GraphRestartedException} (and with this once its restart limit is reached, or a restart fails).
 */
public final class ActorDiedException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     */
    public ActorDiedException(String message) {
        super(message);
    }

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     * @param cause   the underlying failure
     */
    public ActorDiedException(String message, Throwable cause) {
        super(message, cause);
    }
}
