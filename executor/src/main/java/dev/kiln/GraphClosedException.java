package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * The graph was closed (or its {@code Kiln} was) before this execution finished, or an operation was called on a closed graph.
 */
public final class GraphClosedException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     */
    public GraphClosedException(String message) {
        super(message);
    }

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     * @param cause   the underlying failure
     */
    public GraphClosedException(String message, Throwable cause) {
        super(message, cause);
    }
}
