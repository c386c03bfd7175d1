package dev.kiln;

/**
 * Where and how an actor is hosted. Immutable; {@link #defaults()} hosts the actor in the
 * driver's JVM on a thread of its own.
 *
 * @param name the actor's name, unique within its {@code Kiln}; null picks {@code <class>-<id>}
 */
public record ActorOptions(String name) {

    private static final ActorOptions DEFAULTS = new ActorOptions(null);

    /** @return in-process, on its own thread, with a generated name */
    public static ActorOptions defaults() {
        return DEFAULTS;
    }

    /**
     * @param value the actor's name (shown in plans, errors and its thread name)
     * @return a copy with that name
     */
    public ActorOptions name(String value) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("an actor name must not be blank");
        }
        return new ActorOptions(value);
    }
}
