package dev.kiln;

import dev.kiln.transport.RemoteError;

/**
 * What an actor method in another JVM threw, as the cause of an {@link ActorTaskException}.
 * Exceptions cross processes as strings (never as deserialized objects), so this carries the
 * original class name, message and stack trace; {@link #toString()} and
 * {@link #printStackTrace()} show the remote trace.
 */
public final class RemoteActorException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** The original exception's class name. */
    private final String exceptionClass;
    /** The original exception's message, or null. */
    private final String remoteMessage;
    /** The original stack trace as printed in the actor's JVM. */
    private final String remoteStackTrace;

    /**
     * Creates the exception.
     *
     * @param error the error as read from a channel or a reply
     */
    public RemoteActorException(RemoteError error) {
        super(error.exceptionClass() + (error.message() != null ? ": " + error.message() : ""), null, false, false);
        this.exceptionClass = error.exceptionClass();
        this.remoteMessage = error.message();
        this.remoteStackTrace = error.stackTrace();
    }

    /** {@return the class name of the exception the remote method threw, e.g. {@code java.lang.IllegalStateException}} */
    public String exceptionClass() {
        return exceptionClass;
    }

    /** {@return the remote exception's message, or null if it had none} */
    public String remoteMessage() {
        return remoteMessage;
    }

    /** {@return the remote exception's stack trace as printed in the actor's JVM} */
    public String remoteStackTrace() {
        return remoteStackTrace;
    }

    @Override
    public void printStackTrace(java.io.PrintStream s) {
        s.print("remote " + remoteStackTrace);
    }

    @Override
    public void printStackTrace(java.io.PrintWriter s) {
        s.print("remote " + remoteStackTrace);
    }
}
