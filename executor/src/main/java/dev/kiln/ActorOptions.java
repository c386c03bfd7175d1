package dev.kiln;

import java.util.regex.Pattern;

/**
 * Where and how an actor is hosted. Immutable; {@link #defaults()} hosts the actor in the
 * driver's JVM on a thread of its own; {@link #process()} in a worker JVM of its own;
 * {@link #process(String)} in a named worker JVM shared with the other actors given that name.
 *
 * <pre>{@code
 * kiln.actor(Model::new, ActorOptions.process("gpu-worker").name("model"))
 * }</pre>
 *
 * @param name        the actor's name, unique within its {@code Kiln}; null picks {@code <class>-<id>}
 * @param processName null: in the driver's JVM; empty: a new worker JVM of its own; else the name of
 *                    the worker JVM, started with the first actor that names it
 */
public record ActorOptions(String name, String processName) {

    private static final ActorOptions DEFAULTS = new ActorOptions(null, null);
    private static final Pattern PROCESS_NAME = Pattern.compile("[A-Za-z0-9_-]{1,40}");

    /**
     * @throws IllegalArgumentException if the process name is not 1 to 40 of {@code [A-Za-z0-9_-]}, or is {@code driver}
     */
    public ActorOptions {
        if (processName != null && !processName.isEmpty()
                && (!PROCESS_NAME.matcher(processName).matches() || processName.equals("driver"))) {
            throw new IllegalArgumentException("a worker process name must be 1 to 40 of [A-Za-z0-9_-] and not "
                    + "'driver', got '" + processName + "'");
        }
    }

    /** @return in-process, on its own thread, with a generated name */
    public static ActorOptions defaults() {
        return DEFAULTS;
    }

    /**
     * Hosts the actor in a worker JVM of its own, started with the driver JVM's class path and
     * flags; values cross to it through shared memory.
     *
     * @return options for an actor in a new worker JVM
     */
    public static ActorOptions process() {
        return new ActorOptions(null, "");
    }

    /**
     * Hosts the actor in the worker JVM called {@code processName}, started with the first actor
     * that names it; actors of one worker JVM pass values to each other in process.
     *
     * @param processName 1 to 40 of {@code [A-Za-z0-9_-]}
     * @return options for an actor in that worker JVM
     */
    public static ActorOptions process(String processName) {
        if (processName == null || processName.isEmpty()) {
            throw new IllegalArgumentException("a worker process name must not be empty; use ActorOptions.process() "
                    + "for a JVM of the actor's own");
        }
        return new ActorOptions(null, processName);
    }

    /**
     * @param value the actor's name (shown in plans, errors and its thread name)
     * @return a copy with that name
     */
    public ActorOptions name(String value) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("an actor name must not be blank");
        }
        return new ActorOptions(value, processName);
    }

    /** @return whether the actor lives in a worker JVM rather than the driver's */
    public boolean inWorker() {
        return processName != null;
    }
}
