package dev.kiln;

import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * Where and how an actor is hosted. Immutable; each method returns a copy.
 *
 * <ul>
 *   <li>{@link #defaults()}: in the driver's JVM, on a thread of its own;</li>
 *   <li>{@link #process()}: in a worker JVM of its own on this host, started by the runtime;
 *       {@link #process(String)}: in a named worker JVM shared with the other actors given that name;</li>
 *   <li>{@link #host(String)}, {@link #label(String, String)}: on a worker that joined the driver
 *       (another host, or a JVM started by another runtime), chosen by its advertised host name and
 *       labels; {@link #withLabel} adds more labels to match.</li>
 * </ul>
 * {@link #gpu(int)} adds the CUDA device the actor uses, in whichever JVM hosts it.
 *
 * <pre>{@code
 * kiln.actor(Model::new, ActorOptions.process("gpu-worker").gpu(0).name("model"))
 * kiln.actor(Shard::new, ActorOptions.host("node-7").withLabel("zone", "b"))
 * }</pre>
 *
 * @param name        the actor's name, unique within its {@code Kiln}; null picks {@code <class>-<id>}
 * @param processName null: not in a child JVM; empty: a new child JVM of its own; else the name of
 *                    the child JVM, started with the first actor that names it
 * @param host        the advertised host name of the joined worker to place the actor on, or null for any
 * @param labels      labels the joined worker must advertise, each with the given value (sorted by key)
 * @param gpu         the CUDA device index the actor uses, or {@link #NO_GPU}
 */
public record ActorOptions(String name, String processName, String host, Map<String, String> labels, int gpu) {

    /** The device index of an actor that uses no GPU. */
    public static final int NO_GPU = -1;

    private static final ActorOptions DEFAULTS = new ActorOptions(null, null, null, Map.of(), NO_GPU);
    private static final Pattern PROCESS_NAME = Pattern.compile("[A-Za-z0-9_-]{1,40}");

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException if the process name is not 1 to 40 of {@code [A-Za-z0-9_-]} or is
     *                                  {@code driver}; if a child JVM is combined with a joined worker's host
     *                                  or labels; on a blank host, label key or label value; on a device below
     *                                  {@link #NO_GPU}
     */
    public ActorOptions {
        if (processName != null && !processName.isEmpty()
                && (!PROCESS_NAME.matcher(processName).matches() || processName.equals("driver"))) {
            throw new IllegalArgumentException("a worker process name must be 1 to 40 of [A-Za-z0-9_-] and not "
                    + "'driver', got '" + processName + "'");
        }
        Objects.requireNonNull(labels, "labels");
        TreeMap<String, String> sorted = new TreeMap<>();
        labels.forEach((k, v) -> {
            if (k == null || k.isBlank() || v == null || v.isBlank()) {
                throw new IllegalArgumentException("label keys and values must not be blank, got " + k + "=" + v);
            }
            sorted.put(k, v);
        });
        labels = java.util.Collections.unmodifiableMap(sorted);
        if (host != null && host.isBlank()) {
            throw new IllegalArgumentException("a host name must not be blank");
        }
        if (processName != null && (host != null || !labels.isEmpty())) {
            throw new IllegalArgumentException("an actor lives either in a child JVM of this host (process) or on a "
                    + "joined worker (host, label), not both; got process '" + processName + "' with host " + host
                    + " and labels " + labels);
        }
        if (gpu < NO_GPU) {
            throw new IllegalArgumentException("a CUDA device index must be >= 0, got " + gpu);
        }
    }

    /** {@return in-process, on its own thread, with a generated name and no GPU} */
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
        return new ActorOptions(null, "", null, Map.of(), NO_GPU);
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
        return new ActorOptions(null, processName, null, Map.of(), NO_GPU);
    }

    /**
     * Hosts the actor on a joined worker that advertised this host name (when several did, the one
     * hosting the fewest actors). {@code kiln.actor} fails, listing the joined workers, if none did.
     *
     * @param hostName the worker's advertised host name
     * @return options for an actor on that worker
     */
    public static ActorOptions host(String hostName) {
        return new ActorOptions(null, null, Objects.requireNonNull(hostName, "hostName"), Map.of(), NO_GPU);
    }

    /**
     * Hosts the actor on a joined worker that advertised this label with this value (when several
     * did, the one hosting the fewest actors). {@code kiln.actor} fails, listing the joined workers,
     * if none did.
     *
     * @param key   the label's key
     * @param value the value it must have
     * @return options for an actor on such a worker
     */
    public static ActorOptions label(String key, String value) {
        return new ActorOptions(null, null, null, Map.of(key, value), NO_GPU);
    }

    /**
     * {@return a copy that also requires that label}
     *
     * @param key   a further label the joined worker must advertise
     * @param value the value it must have
     * @throws IllegalArgumentException if these options place the actor in a child JVM
     */
    public ActorOptions withLabel(String key, String value) {
        Map<String, String> more = new TreeMap<>(labels);
        more.put(key, value);
        return new ActorOptions(name, processName, host, more, gpu);
    }

    /**
     * {@return a copy with that name}
     *
     * @param value the actor's name (shown in plans, errors and its thread name)
     */
    public ActorOptions name(String value) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("an actor name must not be blank");
        }
        return new ActorOptions(value, processName, host, labels, gpu);
    }

    /**
     * {@return a copy with that device}
     *
     * @param device the CUDA device index the actor uses in its JVM ({@code cudaSetDevice} on its thread)
     */
    public ActorOptions gpu(int device) {
        if (device < 0) {
            throw new IllegalArgumentException("a CUDA device index must be >= 0, got " + device);
        }
        return new ActorOptions(name, processName, host, labels, device);
    }

    /** {@return whether the actor lives in a child JVM of this host that the runtime starts} */
    public boolean inWorker() {
        return processName != null;
    }

    /** {@return whether the actor lives on a worker that joined the driver (placed by host name or labels)} */
    public boolean onJoinedWorker() {
        return host != null || !labels.isEmpty();
    }

    /** {@return whether the actor uses a GPU} */
    public boolean hasGpu() {
        return gpu != NO_GPU;
    }
}
