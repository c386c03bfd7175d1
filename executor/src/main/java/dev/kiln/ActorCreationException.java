package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * An actor's factory threw, so {@code Kiln.actor} could not create the actor; the cause is the factory's exception.
 */
public final class ActorCreationException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     */
    public ActorCreationException(String message) {
        super(message);
    }

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     * @param cause   the underlying failure
     */
    public ActorCreationException(String message, Throwable cause) {
        super(message, cause);
    }
}
