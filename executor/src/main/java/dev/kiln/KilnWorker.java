package dev.kiln;

import dev.kiln.executor.Gpus;
import dev.kiln.executor.StaleFiles;
import dev.kiln.executor.WorkerNode;
import dev.kiln.transport.WorkerInfo;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A worker that joins a driver's {@link Kiln} runtime from anywhere the driver's UDP endpoint is
 * reachable: another host, a container, a Slurm task, another runtime's process. It runs its own
 * Aeron media driver, proves it knows the driver's join secret (an HMAC over the driver's fresh
 * nonce; the secret never travels) and advertises its host name, labels, cores and the free memory
 * of its GPUs. The driver then places actors on it with {@link ActorOptions#host} or
 * {@link ActorOptions#label}; compiled graphs reach them over Aeron UDP from other hosts, and
 * through shared memory from JVMs that share its host name and shared-memory directory.
 *
 * <p>From a shell (the {@code kiln-worker} script in {@code bin/} runs this class):
 *
 * <pre>
 * kiln-worker --driver 10.0.0.5:7400 --secret-file /run/secrets/kiln --listen 10.0.0.7:0 \
 *             --host-name node-7 --label zone=a --label role=encoder
 * </pre>
 *
 * <p>From another runtime's code, so that its own processes host Kiln actors:
 *
 * <pre>{@code
 * try (KilnWorker w = KilnWorker.join(KilnWorker.Options.of("10.0.0.5:7400", secret)
 *         .hostName("node-7").label("role", "encoder").listen("10.0.0.7:0"))) {
 *     w.ended().join();   // serves the driver until it shuts the worker down or is lost
 * }
 * }</pre>
 *
 * <p>A worker serves one driver and stops when the driver closes, when the driver stays silent
 * past {@link Options#timeout} (the driver then fails the graphs that used the worker with
 * {@link ActorDiedException} naming it), or when it is closed. The classes the driver registered
 * ({@link KilnOptions#register}) and the actors' classes must be on the worker's class path.
 * Thread-safe.
 */
public final class KilnWorker implements AutoCloseable {

    /** Exit status of {@link #main}: the driver shut the worker down, or it was closed. */
    public static final int EXIT_DONE = WorkerNode.EXIT_DONE;
    /** Exit status of {@link #main}: bad arguments. */
    public static final int EXIT_USAGE = WorkerNode.EXIT_USAGE;
    /** Exit status of {@link #main}: the driver refused the worker (wrong secret, name taken). */
    public static final int EXIT_REFUSED = WorkerNode.EXIT_REFUSED;
    /** Exit status of {@link #main}: the driver could not be reached, or the join did not finish in time. */
    public static final int EXIT_JOIN_FAILED = WorkerNode.EXIT_JOIN_FAILED;
    /** Exit status of {@link #main}: the driver was lost after the worker joined (silent past the timeout). */
    public static final int EXIT_DRIVER_LOST = WorkerNode.EXIT_DRIVER_LOST;
    /**
     * Exit status of {@link #main}: the driver declared this worker lost (it was frozen or unreachable for longer
     * than the driver's {@link KilnOptions#workerTimeout}); it stopped its actors and left when it could.
     */
    public static final int EXIT_DECLARED_LOST = WorkerNode.EXIT_DECLARED_LOST;

    /** The environment variable {@link #main} reads the secret from when no {@code --secret-file} is given. */
    public static final String SECRET_ENV = "KILN_JOIN_SECRET";

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private final WorkerNode node;

    private KilnWorker(WorkerNode node) {
        this.node = node;
    }

    /**
     * How a worker joins. Immutable; each {@code with}-style method returns a copy.
     *
     * @param driver       the driver's {@code host:port} (its {@link Kiln#joinEndpoint()})
     * @param secret       the driver's join secret ({@link KilnOptions#joinSecret})
     * @param name         the worker's name, unique among the driver's workers; default {@code <host name>-<pid>}
     * @param hostName     the host name plans use for this worker; JVMs with one host name and one shared-memory
     *                     directory talk through shared memory, others over UDP. Default: this machine's name
     * @param labels       labels for {@link ActorOptions#label} placement
     * @param listen       {@code address:port} of the worker's UDP endpoint, reachable from the driver and the
     *                     other workers; port 0 picks a free port. Default {@code 127.0.0.1:0}
     * @param runDirectory where the worker's media driver directory is made
     * @param shmDirectory this host's shared-memory directory; default {@code /dev/shm}
     * @param timeout      how long joining may take, and how long the driver may stay silent before the worker
     *                     counts it as lost; default 10 s (match the driver's {@link KilnOptions#workerTimeout})
     * @param simulatedGpus simulated GPUs for this worker instead of the machine's CUDA devices (see
     *                     {@link KilnOptions#simulatedGpus(int, long)}), or null (the default); JVMs with one host
     *                     name and shared-memory directory share one simulated machine
     */
    public record Options(String driver, byte[] secret, String name, String hostName, Map<String, String> labels,
                          String listen, Path runDirectory, Path shmDirectory, Duration timeout,
                          SimulatedGpus simulatedGpus) {

        /**
         * Checks the values.
         *
         * @throws NullPointerException     on a null component
         * @throws IllegalArgumentException on a non-positive timeout or a blank name
         */
        public Options {
            Objects.requireNonNull(driver, "driver");
            secret = Objects.requireNonNull(secret, "secret").clone();
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(hostName, "hostName");
            if (name.isBlank() || hostName.isBlank()) {
                throw new IllegalArgumentException("name and hostName must not be blank");
            }
            labels = Map.copyOf(labels);
            Objects.requireNonNull(listen, "listen");
            Objects.requireNonNull(runDirectory, "runDirectory");
            Objects.requireNonNull(shmDirectory, "shmDirectory");
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("timeout must be > 0, got " + timeout);
            }
        }

        /**
         * {@return options with the defaults for the rest}
         *
         * @param driver the driver's {@code host:port}
         * @param secret the join secret
         */
        public static Options of(String driver, byte[] secret) {
            String host = localHostName();
            return new Options(driver, secret, host + "-" + ProcessHandle.current().pid(), host, Map.of(),
                    "127.0.0.1:0", KilnOptions.defaults().runDirectory(), KilnOptions.defaults().shmDirectory(),
                    Duration.ofSeconds(10), null);
        }

        /** {@return a copy of the secret} */
        @Override
        public byte[] secret() {
            return secret.clone();
        }

        /**
         * {@return a copy with that value}
         *
         * @param value the worker's name
         */
        public Options name(String value) {
            return new Options(driver, secret, value, hostName, labels, listen, runDirectory, shmDirectory, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value the host name plans use for this worker
         */
        public Options hostName(String value) {
            return new Options(driver, secret, name, value, labels, listen, runDirectory, shmDirectory, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that label added (replacing one with the same key)}
         *
         * @param key   a label's key
         * @param value its value
         */
        public Options label(String key, String value) {
            Map<String, String> all = new LinkedHashMap<>(labels);
            all.put(key, value);
            return new Options(driver, secret, name, hostName, all, listen, runDirectory, shmDirectory, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value {@code address:port} of the worker's endpoint
         */
        public Options listen(String value) {
            return new Options(driver, secret, name, hostName, labels, value, runDirectory, shmDirectory, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value the run directory
         */
        public Options runDirectory(Path value) {
            return new Options(driver, secret, name, hostName, labels, listen, value, shmDirectory, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value the shared-memory directory
         */
        public Options shmDirectory(Path value) {
            return new Options(driver, secret, name, hostName, labels, listen, runDirectory, value, timeout,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value the join and liveness timeout
         */
        public Options timeout(Duration value) {
            return new Options(driver, secret, name, hostName, labels, listen, runDirectory, shmDirectory, value,
                    simulatedGpus);
        }

        /**
         * {@return a copy with that value}
         *
         * @param value simulated GPUs for this worker, or null for the machine's CUDA devices
         */
        public Options simulatedGpus(SimulatedGpus value) {
            return new Options(driver, secret, name, hostName, labels, listen, runDirectory, shmDirectory, timeout,
                    value);
        }

        /** Never shows the secret. */
        @Override
        public String toString() {
            return "KilnWorker.Options[driver=" + driver + ", name=" + name + ", hostName=" + hostName + ", labels="
                    + labels + ", listen=" + listen + ", runDirectory=" + runDirectory + ", shmDirectory="
                    + shmDirectory + ", timeout=" + timeout + (simulatedGpus != null ? ", " + simulatedGpus : "") + "]";
        }
    }

    /**
     * Joins a driver and starts serving it on a thread of its own.
     *
     * @param options how to join
     * @return the joined worker
     * @throws WorkerNode.JoinFailedException if the driver refuses the worker ({@code refused()}), cannot be
     *                                        reached, or the join does not finish within the timeout
     * @throws IllegalStateException          if the listen address cannot be bound, or the run directory is a link,
     *                                        another user's or open to other users
     */
    public static KilnWorker join(Options options) {
        // What workers and drivers that died without closing left here: nothing else would ever remove it.
        StaleFiles.remove(options.runDirectory(), options.shmDirectory());
        Gpus gpus = options.simulatedGpus() != null
                ? Gpus.simulated(options.shmDirectory(), options.hostName(), options.simulatedGpus()) : Gpus.detect();
        try {
            WorkerInfo info = new WorkerInfo(options.hostName(), options.labels(),
                    Runtime.getRuntime().availableProcessors(), gpus.describe());
            return new KilnWorker(WorkerNode.join(new WorkerNode.Settings(options.driver(), options.secret(),
                    options.name(), options.listen(), info, gpus, options.runDirectory(), options.shmDirectory(),
                    options.timeout(), null)));
        } catch (RuntimeException e) {
            gpus.close();
            throw e;
        }
    }

    /** {@return the worker's name} */
    public String name() {
        return node.name();
    }

    /** {@return the worker's UDP endpoint, {@code address:port}} */
    public String endpoint() {
        return node.endpoint();
    }

    /**
     * {@return completes with why the worker stopped serving (the driver shut it down or was lost, or
     *         {@link #close} was called), once its actors are stopped}
     */
    public CompletableFuture<String> ended() {
        return node.ended();
    }

    /**
     * Waits for the worker to stop serving.
     *
     * @param timeout how long to wait
     * @return whether it stopped within the timeout
     * @throws InterruptedException if interrupted
     */
    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        try {
            node.ended().get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return true;
        } catch (TimeoutException e) {
            return false;
        } catch (ExecutionException e) {
            return true;
        }
    }

    /** {@return whether the worker stopped because the driver was lost or declared it lost (rather than shut it down)} */
    public boolean lostDriver() {
        return node.lostDriver();
    }

    /**
     * {@return how the worker ended, as {@link #main} exits: {@link #EXIT_DONE} (also while it serves),
     *         {@link #EXIT_DRIVER_LOST} or {@link #EXIT_DECLARED_LOST}}
     */
    public int exitStatus() {
        return node.exitStatus();
    }

    /** {@return the control messages this worker dropped (forged, replayed, malformed) since it started joining} */
    public ControlStats controlStats() {
        return node.stats();
    }

    /** Leaves the driver: stops the actors here; the driver counts the worker as gone. Idempotent. */
    @Override
    public void close() {
        node.close();
    }

    @Override
    public String toString() {
        return "KilnWorker(" + node + ")";
    }

    /**
     * Reads a join secret from a file: its bytes, without trailing whitespace (so a file written by
     * {@code openssl rand -hex 32 > secret} works). Give the driver the same bytes.
     *
     * @param file the file
     * @return the secret
     * @throws UncheckedIOException if it cannot be read
     */
    public static byte[] readSecret(Path file) {
        try {
            return Files.readString(file, StandardCharsets.ISO_8859_1).stripTrailing()
                    .getBytes(StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the join secret from " + file, e);
        }
    }

    private static String localHostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "localhost";
        }
    }

    private static final String USAGE = """
            usage: kiln-worker --driver HOST:PORT [--secret-file FILE] [--name NAME] [--host-name NAME]
                               [--label KEY=VALUE]... [--listen ADDRESS:PORT] [--run-dir DIR] [--shm-dir DIR]
                               [--timeout SECONDS] [--simulated-gpus COUNT,BYTES[,nopeer]]
              --driver       the driver's join endpoint (Kiln.joinEndpoint())
              --secret-file  file holding the join secret (trailing whitespace ignored); else $KILN_JOIN_SECRET
              --name         the worker's name, unique among the driver's workers (default HOST-PID)
              --host-name    the host name plans use for this worker (default: this machine's name)
              --label        a placement label; repeat for more
              --listen       this worker's UDP endpoint, reachable by the driver and other workers (default 127.0.0.1:0)
              --run-dir      where the worker's Aeron directory goes (default <tmp>/kiln-<user>)
              --shm-dir      this host's shared-memory directory (default /dev/shm)
              --timeout      seconds to join, and of driver silence before it counts as lost (default 10;
                             heartbeats go every 250 ms, so 1 or more)
              --simulated-gpus  simulate COUNT GPUs of BYTES each (suffix k, m, g allowed), with peer access
                             unless ",nopeer"; for development and CI without a GPU
            exit status: 0 shut down by the driver, 2 usage, 3 refused, 4 could not join, 5 driver lost,
                         6 declared lost by the driver (frozen or unreachable past its worker timeout)
            """;

    /**
     * Joins a driver and serves it until it shuts the worker down or is lost; the usage is
     * printed on bad arguments. SIGTERM makes the worker leave cleanly.
     *
     * @param args the command line
     */
    public static void main(String[] args) {
        Options options;
        try {
            options = parse(args);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            System.err.println("kiln-worker: " + e.getMessage());
            System.err.print(USAGE);
            System.exit(EXIT_USAGE);
            return;
        }
        KilnWorker worker;
        try {
            worker = join(options);
        } catch (WorkerNode.JoinFailedException e) {
            System.err.println("kiln-worker: " + e.getMessage());
            System.exit(e.refused() ? EXIT_REFUSED : EXIT_JOIN_FAILED);
            return;
        } catch (RuntimeException e) {
            System.err.println("kiln-worker: cannot join: " + e.getMessage());
            System.exit(EXIT_JOIN_FAILED);
            return;
        }
        System.err.println("kiln-worker: " + worker.name() + " joined " + options.driver() + " from "
                + worker.endpoint());
        Runtime.getRuntime().addShutdownHook(new Thread(worker::close, "kiln-worker-shutdown"));
        String why = worker.ended().join();
        System.err.println("kiln-worker: " + worker.name() + " stopped: " + why);
        System.exit(worker.exitStatus());
    }

    static Options parse(String[] args) {
        String driver = null;
        byte[] secret = null;
        List<String[]> labels = new ArrayList<>();
        Map<String, String> flags = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (!flag.startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --flag VALUE at '" + flag + "'");
            }
            String value = args[++i];
            switch (flag) {
                case "--driver" -> driver = value;
                case "--secret-file" -> secret = readSecret(Path.of(value));
                case "--label" -> {
                    int eq = value.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--label wants KEY=VALUE, got '" + value + "'");
                    }
                    labels.add(new String[] {value.substring(0, eq), value.substring(eq + 1)});
                }
                case "--name", "--host-name", "--listen", "--run-dir", "--shm-dir", "--timeout", "--simulated-gpus" ->
                        flags.put(flag, value);
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (driver == null) {
            throw new IllegalArgumentException("--driver is required");
        }
        if (secret == null) {
            String env = System.getenv(SECRET_ENV);
            if (env == null || env.isEmpty()) {
                throw new IllegalArgumentException("no join secret: give --secret-file or set " + SECRET_ENV);
            }
            secret = env.getBytes(StandardCharsets.ISO_8859_1);
        }
        Options o = Options.of(driver, secret);
        if (flags.containsKey("--host-name")) {
            o = o.hostName(flags.get("--host-name")).name(flags.get("--host-name") + "-" + ProcessHandle.current().pid());
        }
        for (Map.Entry<String, String> f : flags.entrySet()) {
            o = switch (f.getKey()) {
                case "--name" -> o.name(f.getValue());
                case "--listen" -> o.listen(f.getValue());
                case "--run-dir" -> o.runDirectory(Path.of(f.getValue()));
                case "--shm-dir" -> o.shmDirectory(Path.of(f.getValue()));
                case "--timeout" -> o.timeout(seconds(f.getValue()));
                case "--simulated-gpus" -> o.simulatedGpus(simulatedGpus(f.getValue()));
                default -> o;
            };
        }
        for (String[] l : labels) {
            o = o.label(l[0], l[1]);
        }
        return o;
    }

    private static SimulatedGpus simulatedGpus(String value) {
        String[] parts = value.split(",");
        if (parts.length < 2 || parts.length > 3 || (parts.length == 3 && !parts[2].equals("nopeer"))) {
            throw new IllegalArgumentException("--simulated-gpus wants COUNT,BYTES[,nopeer], got '" + value + "'");
        }
        try {
            String b = parts[1].toLowerCase(java.util.Locale.ROOT);
            long unit = b.endsWith("g") ? 1L << 30 : b.endsWith("m") ? 1L << 20 : b.endsWith("k") ? 1L << 10 : 1;
            long bytes = Math.multiplyExact(Long.parseLong(unit == 1 ? b : b.substring(0, b.length() - 1)), unit);
            return new SimulatedGpus(Integer.parseInt(parts[0]), bytes, parts.length == 2);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("--simulated-gpus wants COUNT,BYTES[,nopeer], got '" + value + "'");
        }
    }

    private static Duration seconds(String value) {
        try {
            double s = Double.parseDouble(value);
            if (!(s > 0)) {
                throw new NumberFormatException();
            }
            return Duration.ofNanos((long) (s * 1e9));
        } catch (NumberFormatException | DateTimeParseException e) {
            throw new IllegalArgumentException("--timeout wants a positive number of seconds, got '" + value + "'");
        }
    }
}
