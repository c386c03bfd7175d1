package dev.kiln;

import dev.kiln.graph.KilnException;
import dev.kiln.transport.RemoteError;

import java.util.ArrayList;
import java.util.List;

/**
 * What an actor method in another JVM threw, as the cause of an {@link ActorTaskException}.
 * Exceptions cross processes as strings (never as deserialized objects), so this carries the
 * original class name, message and stack trace. The remote frames are parsed back into this
 * exception's {@link #getStackTrace() stack trace}, and each remote {@code Caused by:} becomes a
 * {@link #getCause() cause} of the same kind, so every logger that prints a throwable
 * ({@code java.util.logging}, {@code System.Logger}, SLF4J/Logback, Log4j) shows the remote trace;
 * the text as printed in the actor's JVM stays in {@link #remoteStackTrace()}.
 */
public final class RemoteActorException extends KilnException {

    private static final long serialVersionUID = 1L;
    /** Bounds on what a peer's text can make: frames per exception, causes in a chain. */
    private static final int MAX_FRAMES = 1024;
    private static final int MAX_CAUSES = 32;

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
        this(error.exceptionClass(), error.message(), error.stackTrace(), error.stackTrace().split("\r?\n", -1), 0,
                0);
    }

    /** One exception of the remote chain: its frames from {@code lines[from]} up to the next "Caused by:". */
    private RemoteActorException(String exceptionClass, String message, String text, String[] lines, int from,
                                 int depth) {
        super(exceptionClass + (message != null ? ": " + message : "")); // the cause is set below, or stays none
        this.exceptionClass = exceptionClass;
        this.remoteMessage = message;
        this.remoteStackTrace = text;
        List<StackTraceElement> frames = new ArrayList<>();
        int i = from;
        for (; i < lines.length && !lines[i].startsWith("Caused by: "); i++) {
            if (lines[i].startsWith("\tat ") && frames.size() < MAX_FRAMES) {
                frames.add(frame(lines[i].substring(4)));
            }
        }
        setStackTrace(frames.toArray(StackTraceElement[]::new));
        if (i < lines.length && depth < MAX_CAUSES) {
            String head = lines[i].substring("Caused by: ".length());
            int colon = head.indexOf(": ");
            String cls = colon < 0 ? head : head.substring(0, colon);
            String msg = colon < 0 ? null : head.substring(colon + 2);
            initCause(new RemoteActorException(cls, msg, "Caused by: " + head, lines, i + 1, depth + 1));
        }
    }

    /** A frame as {@link StackTraceElement#toString()} printed it, e.g. {@code app//a.B.c(B.java:12)}. */
    private static StackTraceElement frame(String text) {
        int open = text.lastIndexOf('(');
        String where = open < 0 ? text : text.substring(0, open);
        String source = open < 0 || !text.endsWith(")") ? "" : text.substring(open + 1, text.length() - 1);
        where = where.substring(where.lastIndexOf('/') + 1); // drop "app//", "java.base/"
        int dot = where.lastIndexOf('.');
        String cls = dot < 0 ? "?" : where.substring(0, dot);
        String method = dot < 0 ? where : where.substring(dot + 1);
        String file = null;
        int line = -1;
        if (source.equals("Native Method")) {
            line = -2;
        } else if (!source.equals("Unknown Source") && !source.isEmpty()) {
            int c = source.lastIndexOf(':');
            file = c < 0 ? source : source.substring(0, c);
            if (c >= 0) {
                try {
                    line = Integer.parseInt(source.substring(c + 1));
                } catch (NumberFormatException e) {
                    file = source;
                }
            }
        }
        return new StackTraceElement(cls, method, file, line);
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
}
