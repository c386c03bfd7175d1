package dev.kiln;

import dev.kiln.graph.KilnException;

import java.io.Serial;

/**
 * A result did not arrive within the get timeout ({@code CompileOptions.getTimeout} or the timeout passed to {@code get}). The execution goes on; a later {@code get} may still succeed.
 */
public final class ChannelTimeoutException extends KilnException {

    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     */
    public ChannelTimeoutException(String message) {
        super(message);
    }

    /**
     * Creates the exception.
     *
     * @param message what happened and what to do
     * @param cause   the underlying failure
     */
    public ChannelTimeoutException(String message, Throwable cause) {
        super(message, cause);
    }
}
