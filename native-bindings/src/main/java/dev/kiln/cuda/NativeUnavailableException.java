package dev.kiln.cuda;

import dev.kiln.graph.KilnException;

/**
 * Thrown when a native binding is called but its library (or the GPU behind it) cannot be used.
 * The message is the diagnosis: what was looked for, where, and how to fix it.
 */
public final class NativeUnavailableException extends KilnException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param diagnosis why the library cannot be used and what to do about it
     */
    public NativeUnavailableException(String diagnosis) {
        super(diagnosis);
    }
}
