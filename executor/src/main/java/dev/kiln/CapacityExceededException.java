package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * {@code execute} found {@code maxInflight} executions unfinished for the whole {@code submitTimeout}. Nothing was started. Read results ({@code get()}) before submitting more, or raise {@code CompileOptions.maxInflight} / {@code submitTimeout}.
 */
public final class CapacityExceededException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     */
    public CapacityExceededException(String message) {
        super(message);
    }

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     * @param cause   the underlying failure
     */
    public CapacityExceededException(String message, Throwable cause) {
        super(message, cause);
    }
}
