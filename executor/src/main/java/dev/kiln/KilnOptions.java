package dev.kiln;

import dev.kiln.transport.JoinHandshake;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Options of a {@link Kiln} runtime. Immutable: each method named after its option ({@link #register},
 * {@link #workerJvmOptions(List)}, ...) returns a copy with that option changed.
 *
 * <pre>{@code
 * Kiln.local(KilnOptions.defaults().register(Order.class, Quote.class))
 *
 * // a driver that accepts workers from other hosts (see KilnWorker)
 * Kiln.local(KilnOptions.defaults().listen("10.0.0.5:7400").joinSecret(secret).hostName("head-node"))
 * }</pre>
 *
 * @param runDirectory       where the runtime keeps its working files (the control plane's Aeron directory);
 *                           default {@code <java.io.tmpdir>/kiln-<user>}
 * @param shmDirectory       where shared-memory channel files live; default {@code /dev/shm}
 * @param types              the user's classes (records, enums, classes) whose values may cross JVMs; JDK values
 *                           (primitive arrays, boxed primitives, {@code String}, collections, {@code Optional}) and
 *                           {@code Tensor} need no registration
 * @param workerJvmOptions   JVM options appended to those the driver's JVM was started with, when starting a worker JVM
 * @param workerClassPath    the class path of worker JVMs, exactly these jars and directories; empty (the default):
 *                           automatic, see {@link #workerClassPath(List)}
 * @param workerStartTimeout how long starting a worker JVM (or creating an actor in one) may take
 * @param listen             {@code address:port} where the runtime accepts workers that join from other hosts,
 *                           and receives their Aeron UDP channels; port 0 picks a free port. Default
 *                           {@code 127.0.0.1:0}: loopback only. Used only with a {@link #joinSecret}
 * @param joinSecret         the secret a joining worker must prove it knows (an HMAC over a fresh nonce; the
 *                           secret never travels), at least {@value JoinHandshake#MIN_SECRET_BYTES} bytes; null
 *                           (the default) accepts no workers and opens no UDP endpoint
 * @param hostName           this JVM's host as compiled plans name it; workers must join with other host names
 *                           unless they share this host's shared memory. Default {@code localhost}
 * @param workerTimeout      how long a worker (a child JVM or a joined worker), or a peer of a cross-host channel,
 *                           may stay silent before it counts as lost; each side sends a heartbeat every 250 ms, so
 *                           keep it at 1 s or more. A worker paused for less carries on. Default 10 s
 * @param udpMtu             MTU of the Aeron UDP data channels between hosts, in bytes; default 1408
 * @param udpTermLength      term length of each Aeron UDP data publication, in bytes (a power of two from 64 KiB
 *                           to 1 GiB; bounds the bytes in flight per reader); default 4 MiB
 * @param simulatedGpus      null (the default): actors placed on GPUs use this machine's CUDA devices; else the
 *                           runtime and its child JVMs use these simulated GPUs instead, which obey CUDA's rules on
 *                           host memory (see {@link #simulatedGpus(int, long)})
 * @param authenticateData   whether the data frames of cross-host (Aeron UDP) channels carry an HMAC-SHA256 tag
 *                           under a key the driver makes for each graph, so that frames forged, mutated or replayed
 *                           on the network are dropped and counted instead of read; default false (see
 *                           {@code docs/security.md} for what it protects and costs)
 * @param maxCallBytes       the most bytes a dynamic call ({@code Kiln.call}) to an actor in another JVM may carry as
 *                           its encoded arguments, or as its encoded result; larger ones cross in chunks, and beyond
 *                           this the call fails at once naming this option. 1 KiB to 1 GiB; default 64 MiB
 */
public record KilnOptions(Path runDirectory, Path shmDirectory, List<Class<?>> types, List<String> workerJvmOptions,
                          List<Path> workerClassPath, Duration workerStartTimeout, String listen, byte[] joinSecret, String hostName,
                          Duration workerTimeout, int udpMtu, int udpTermLength, SimulatedGpus simulatedGpus,
                          boolean authenticateData, long maxCallBytes) {

    private static final KilnOptions DEFAULTS = new KilnOptions(
            Path.of(System.getProperty("java.io.tmpdir"), "kiln-" + System.getProperty("user.name", "user")),
            Path.of("/dev/shm"), List.of(), List.of(), List.of(), Duration.ofSeconds(60), "127.0.0.1:0", null, "localhost",
            Duration.ofSeconds(10), 1408, 4 * 1024 * 1024, null, false, 64L << 20);

    /** The largest {@link #maxCallBytes}: 1 GiB. */
    public static final long MAX_CALL_BYTES = 1L << 30;

    /**
     * Checks the values.
     *
     * @throws NullPointerException     on a null component (other than {@code joinSecret})
     * @throws IllegalArgumentException on a non-positive timeout, a short secret, a bad endpoint, MTU or term length
     */
    public KilnOptions {
        Objects.requireNonNull(runDirectory, "runDirectory");
        Objects.requireNonNull(shmDirectory, "shmDirectory");
        types = List.copyOf(types);
        workerJvmOptions = List.copyOf(workerJvmOptions);
        workerClassPath = workerClassPath == null ? List.of() : List.copyOf(workerClassPath);
        positive(workerStartTimeout, "workerStartTimeout");
        positive(workerTimeout, "workerTimeout");
        Objects.requireNonNull(listen, "listen");
        int colon = listen.lastIndexOf(':');
        if (colon <= 0 || !listen.substring(colon + 1).matches("[0-9]{1,5}")
                || Integer.parseInt(listen.substring(colon + 1)) > 65535) {
            throw new IllegalArgumentException("listen must be address:port (port 0 for any free port), got '" + listen
                    + "'");
        }
        if (joinSecret != null) {
            if (joinSecret.length < JoinHandshake.MIN_SECRET_BYTES) {
                throw new IllegalArgumentException("joinSecret must have at least " + JoinHandshake.MIN_SECRET_BYTES
                        + " bytes, got " + joinSecret.length + "; use random bytes, e.g. 32 from SecureRandom");
            }
            joinSecret = joinSecret.clone();
        }
        Objects.requireNonNull(hostName, "hostName");
        if (hostName.isBlank() || hostName.contains("/")) {
            throw new IllegalArgumentException("hostName must be non-blank and contain no '/', got '" + hostName + "'");
        }
        if (udpMtu < 576 || udpMtu > 65504 || udpMtu % 32 != 0) {
            throw new IllegalArgumentException("udpMtu must be a multiple of 32 from 576 to 65504, got " + udpMtu);
        }
        if (Integer.bitCount(udpTermLength) != 1 || udpTermLength < 64 * 1024 || udpTermLength > (1 << 30)) {
            throw new IllegalArgumentException("udpTermLength must be a power of two from 64 KiB to 1 GiB, got "
                    + udpTermLength);
        }
        if (maxCallBytes < 1024 || maxCallBytes > MAX_CALL_BYTES) {
            throw new IllegalArgumentException("maxCallBytes must be from 1 KiB to 1 GiB, got " + maxCallBytes);
        }
    }

    private static void positive(Duration d, String name) {
        Objects.requireNonNull(d, name);
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + " must be > 0, got " + d);
        }
    }

    /**
     * {@return the defaults: run directory under java.io.tmpdir, /dev/shm, no registered types, 60 s worker start,
     *         no joined workers (loopback listen address, no secret), host name {@code localhost}, 10 s worker
     *         timeout, UDP MTU 1408 and 4 MiB terms, data frames not authenticated}
     */
    public static KilnOptions defaults() {
        return DEFAULTS;
    }

    /** {@return a copy of the join secret, or null when the runtime accepts no workers} */
    @Override
    public byte[] joinSecret() {
        return joinSecret == null ? null : joinSecret.clone();
    }

    /** {@return whether the runtime accepts workers that join ({@link #joinSecret} is set)} */
    public boolean acceptsWorkers() {
        return joinSecret != null;
    }

    /**
     * Allows values of these exact classes to cross JVMs (through Apache Fory with class
     * registration required, field by field: never Java deserialization, and no {@code readObject}
     * runs). One call per record, enum or class of yours; register the classes of their fields too
     * unless they are JDK types. Registering a class that needs no registration ({@code int[].class},
     * {@code String.class}) is harmless. Joined workers must have these classes on their class path.
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
        return new KilnOptions(runDirectory, shmDirectory, all, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the run directory
     */
    public KilnOptions runDirectory(Path value) {
        return new KilnOptions(value, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the shared-memory directory (a tmpfs such as /dev/shm, for speed)
     */
    public KilnOptions shmDirectory(Path value) {
        return new KilnOptions(runDirectory, value, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value JVM options for worker JVMs, added after the driver JVM's own (which they inherit, but for a
     *              {@code jdwp} debugger agent), e.g. {@code List.of("-Xmx8g")}
     */
    public KilnOptions workerJvmOptions(List<String> value) {
        return new KilnOptions(runDirectory, shmDirectory, types, value, workerClassPath, workerStartTimeout, listen,
                joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * The class path of the worker JVMs this runtime starts ({@code ActorOptions.process}).
     *
     * <p>Empty (the default) is automatic, and works when the driver runs from a plain class path, a fat jar
     * ({@code java -jar app.jar}), under {@code mvn exec:java} or in an IDE that loads the application through a
     * class loader of its own: the entries of {@code java.class.path}, then the jars and directories Kiln's own
     * classes and its dependencies (Aeron, Agrona, Fory) were loaded from, the URLs of the {@code URLClassLoader}s
     * of the thread context class loader's chain and of Kiln's, and where the registered {@link #types} and the
     * actor factory that starts the worker come from. Only local files that exist are kept, each once, in that
     * order; nothing is ever fetched. Set this when a worker needs something that automatic choice cannot see
     * (a class loaded only through reflection, from a custom class loader that is not a {@code URLClassLoader}
     * and gives no code source). A worker that cannot start says why, with the last lines of its output and the
     * likely fix ({@code docs/worker-jvms.md}).
     *
     * @param value the worker JVMs' class path, exactly these entries (Kiln's jars and their dependencies
     *              included); null or empty for the automatic one
     * @return a copy with that value
     */
    public KilnOptions workerClassPath(List<Path> value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, value, workerStartTimeout, listen,
                joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData, maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how long a worker JVM may take to start, or an actor to be created in one
     */
    public KilnOptions workerStartTimeout(Duration value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, value, listen,
                joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value {@code address:port} to accept workers on, e.g. {@code 10.0.0.5:7400}; only this interface
     *              is listened on
     */
    public KilnOptions listen(String value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                value, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the shared join secret (copied), or null to accept no workers
     */
    public KilnOptions joinSecret(byte[] value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, value, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value this JVM's host name in plans
     */
    public KilnOptions hostName(String value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, value, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how long a joined worker or cross-host peer may stay silent before it counts as lost
     */
    public KilnOptions workerTimeout(Duration value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, value, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * {@return a copy with those values}
     *
     * @param mtu        MTU of cross-host data channels, in bytes
     * @param termLength term length of each cross-host data publication, in bytes
     */
    public KilnOptions udp(int mtu, int termLength) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, mtu, termLength, simulatedGpus, authenticateData,
                maxCallBytes);
    }

    /**
     * Simulated GPUs for development and CI without a GPU: this runtime and the child JVMs it starts see
     * {@code count} devices of {@code bytesEach} bytes with peer access between them, which obey CUDA's rules
     * (a current device per thread, default streams per device, events recorded only on their device's streams,
     * bounded memory, IPC handles opened only by other processes, NCCL's matching and blocking) and refuse what a
     * GPU refuses with CUDA's error names. GPU actors, channels, communicators and kernels with a host
     * implementation ({@code GpuKernel}) then run unchanged. JVMs with the same host name and shared-memory
     * directory share one simulated machine; a joined worker simulates its own
     * ({@code KilnWorker.Options.simulatedGpus}).
     *
     * @param count     devices, 1 to {@value SimulatedGpus#MAX_DEVICES}
     * @param bytesEach memory of each device, at least 1 MiB (sparse: only what is written takes memory)
     * @return a copy with those simulated GPUs
     */
    public KilnOptions simulatedGpus(int count, long bytesEach) {
        return simulatedGpus(SimulatedGpus.of(count, bytesEach));
    }

    /**
     * {@return a copy with that value}
     *
     * @param value simulated GPUs (for example without peer access: {@code SimulatedGpus.of(2, 1 << 30)
     *              .withPeerAccess(false)}), or null to use this machine's CUDA devices
     * @see #simulatedGpus(int, long)
     */
    public KilnOptions simulatedGpus(SimulatedGpus value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, value, authenticateData,
                maxCallBytes);
    }

    /**
     * Authenticated data frames between hosts: with {@code true}, the driver makes a random 32-byte key for each
     * graph it compiles and sends it to the graph's processes with the plan; every data frame and release message of
     * the graph's Aeron UDP channels then carries a 16-byte HMAC-SHA256 tag, and a frame whose tag does not verify
     * (forged or mutated on the network), or an authentic one that cannot be news (replayed), is dropped and counted
     * rather than read. It does not encrypt, and an attacker on the path can still drop frames, which fails the graph
     * as a lost peer would; see {@code docs/security.md}, which also gives the measured cost. Affects graphs compiled
     * afterwards; channels within a host (shared memory, GPU) are not affected.
     *
     * @param value whether to authenticate cross-host data frames
     * @return a copy with that value
     */
    public KilnOptions authenticateData(boolean value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, value, maxCallBytes);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the most bytes of a dynamic call's encoded arguments or result, 1 KiB to 1 GiB
     */
    public KilnOptions maxCallBytes(long value) {
        return new KilnOptions(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout,
                listen, joinSecret, hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus, authenticateData,
                value);
    }

    /** Compares the secret by content, like every other component. */
    @Override
    public boolean equals(Object o) {
        return o instanceof KilnOptions k && runDirectory.equals(k.runDirectory) && shmDirectory.equals(k.shmDirectory)
                && types.equals(k.types) && workerJvmOptions.equals(k.workerJvmOptions)
                && workerClassPath.equals(k.workerClassPath)
                && workerStartTimeout.equals(k.workerStartTimeout) && listen.equals(k.listen)
                && java.util.Arrays.equals(joinSecret, k.joinSecret) && hostName.equals(k.hostName)
                && workerTimeout.equals(k.workerTimeout) && udpMtu == k.udpMtu && udpTermLength == k.udpTermLength
                && Objects.equals(simulatedGpus, k.simulatedGpus) && authenticateData == k.authenticateData
                && maxCallBytes == k.maxCallBytes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(runDirectory, shmDirectory, types, workerJvmOptions, workerClassPath, workerStartTimeout, listen,
                java.util.Arrays.hashCode(joinSecret), hostName, workerTimeout, udpMtu, udpTermLength, simulatedGpus,
                authenticateData, maxCallBytes);
    }

    /** Never shows the secret, only whether one is set. */
    @Override
    public String toString() {
        return "KilnOptions[runDirectory=" + runDirectory + ", shmDirectory=" + shmDirectory + ", types=" + types
                + ", workerJvmOptions=" + workerJvmOptions
                + (workerClassPath.isEmpty() ? "" : ", workerClassPath=" + workerClassPath) + ", workerStartTimeout=" + workerStartTimeout + ", listen="
                + listen + ", joinSecret=" + (joinSecret == null ? "none" : "(" + joinSecret.length + " bytes)")
                + ", hostName=" + hostName + ", workerTimeout=" + workerTimeout + ", udpMtu=" + udpMtu
                + ", udpTermLength=" + udpTermLength + (simulatedGpus != null ? ", " + simulatedGpus : "")
                + (authenticateData ? ", authenticateData" : "") + ", maxCallBytes=" + maxCallBytes + "]";
    }
}
