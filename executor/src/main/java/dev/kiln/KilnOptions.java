package dev.kiln;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Options of a {@link Kiln} runtime. Immutable: each {@code withX}/{@link #register} returns a copy.
 *
 * <pre>{@code
 * Kiln.local(KilnOptions.defaults().register(Order.class, Quote.class))
 * }</pre>
 *
 * @param runDirectory       where the runtime keeps its working files (the control plane's Aeron directory);
 *                           default {@code <java.io.tmpdir>/kiln-<user>}
 * @param shmDirectory       where shared-memory channel files live; default {@code /dev/shm}
 * @param types              classes, other than those encoded natively (primitives, {@code String},
 *                           {@code byte[]}, {@code Object[]}, {@code Tensor}), whose values may cross JVMs
 * @param workerJvmOptions   JVM options appended to those the driver's JVM was started with, when starting a worker JVM
 * @param workerStartTimeout how long starting a worker JVM (or creating an actor in one) may take
 */
public record KilnOptions(Path runDirectory, Path shmDirectory, List<Class<?>> types, List<String> workerJvmOptions,
                          Duration workerStartTimeout) {

    private static final KilnOptions DEFAULTS = new KilnOptions(
            Path.of(System.getProperty("java.io.tmpdir"), "kiln-" + System.getProperty("user.name", "user")),
            Path.of("/dev/shm"), List.of(), List.of(), Duration.ofSeconds(60));

    /**
     * Checks the values.
     *
     * @throws NullPointerException     on a null component
     * @throws IllegalArgumentException on a non-positive timeout
     */
    public KilnOptions {
        Objects.requireNonNull(runDirectory, "runDirectory");
        Objects.requireNonNull(shmDirectory, "shmDirectory");
        types = List.copyOf(types);
        workerJvmOptions = List.copyOf(workerJvmOptions);
        Objects.requireNonNull(workerStartTimeout, "workerStartTimeout");
        if (workerStartTimeout.isNegative() || workerStartTimeout.isZero()) {
            throw new IllegalArgumentException("workerStartTimeout must be > 0, got " + workerStartTimeout);
        }
    }

    /** @return the defaults: run directory under java.io.tmpdir, /dev/shm, no registered types, 60 s worker start */
    public static KilnOptions defaults() {
        return DEFAULTS;
    }

    /**
     * Allows values of these exact classes to cross JVMs (through Apache Fory with class
     * registration required; never Java deserialization). Register the classes of their fields too
     * unless they are JDK types.
     *
     * @param classes classes to add
     * @return a copy with them added (a class already present is not added twice)
     */
    public KilnOptions register(Class<?>... classes) {
        List<Class<?>> all = new ArrayList<>(types);
        for (Class<?> c : classes) {
            if (!all.contains(Objects.requireNonNull(c, "class"))) {
                all.add(c);
            }
        }
        return new KilnOptions(runDirectory, shmDirectory, all, workerJvmOptions, workerStartTimeout);
    }

    /**
     * @param value the run directory
     * @return a copy with that value
     */
    public KilnOptions runDirectory(Path value) {
        return new KilnOptions(value, shmDirectory, types, workerJvmOptions, workerStartTimeout);
    }

    /**
     * @param value the shared-memory directory (a tmpfs such as /dev/shm, for speed)
     * @return a copy with that value
     */
    public KilnOptions shmDirectory(Path value) {
        return new KilnOptions(runDirectory, value, types, workerJvmOptions, workerStartTimeout);
    }

    /**
     * @param value JVM options for worker JVMs, e.g. {@code List.of("-Xmx8g")}
     * @return a copy with that value
     */
    public KilnOptions workerJvmOptions(List<String> value) {
        return new KilnOptions(runDirectory, shmDirectory, types, value, workerStartTimeout);
    }

    /**
     * @param value how long a worker JVM may take to start, or an actor to be created in one
     * @return a copy with that value
     */
    public KilnOptions workerStartTimeout(Duration value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, value);
    }
}
