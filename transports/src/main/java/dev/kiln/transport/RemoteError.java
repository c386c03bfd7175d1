package dev.kiln.transport;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Objects;

/**
 * A user exception as it travels through a channel in place of a value: only strings, never
 * the exception object, so that no reader ever deserializes an exception class. Immutable,
 * hence thread-safe.
 *
 * @param actor          the actor whose method threw
 * @param method         the method's name
 * @param sequence       the execution's sequence number
 * @param exceptionClass the exception's class name, e.g. {@code java.lang.IllegalStateException}
 * @param message        the exception's message, or null if it had none
 * @param stackTrace     the exception's stack trace as {@link Throwable#printStackTrace()} prints it
 */
public record RemoteError(String actor, String method, long sequence, String exceptionClass, String message,
                          String stackTrace) {

    /**
     * @throws NullPointerException if any component but {@code message} is null
     */
    public RemoteError {
        Objects.requireNonNull(actor, "actor");
        Objects.requireNonNull(method, "method");
        Objects.requireNonNull(exceptionClass, "exceptionClass");
        Objects.requireNonNull(stackTrace, "stackTrace");
    }

    /**
     * Captures {@code error} as strings.
     *
     * @param actor    the actor whose method threw
     * @param method   the method's name
     * @param sequence the execution's sequence number
     * @param error    what the method threw
     * @return the record
     */
    public static RemoteError of(String actor, String method, long sequence, Throwable error) {
        StringWriter trace = new StringWriter();
        try (PrintWriter out = new PrintWriter(trace)) {
            error.printStackTrace(out);
        }
        return new RemoteError(actor, method, sequence, error.getClass().getName(), error.getMessage(),
                trace.toString());
    }
}
