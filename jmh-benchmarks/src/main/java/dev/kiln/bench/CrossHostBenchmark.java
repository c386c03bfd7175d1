package dev.kiln.bench;

import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.KilnWorker;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Kiln across hosts, over Aeron UDP on loopback, against raw Aeron UDP between two media drivers
 * in the same run. Each Kiln trial starts a driver ({@code Kiln.local} with host name
 * {@code host-a}, a join secret and a loopback listen address) and one {@link KilnWorker} JVM that
 * joins it as {@code host-b}, with its own Aeron directory and shared-memory directory (same
 * {@code java.home}, the fork's JVM flags and class path). The graph's one actor ({@link Sink}) lives
 * on the worker, so both of its edges are {@code AERON_UDP}. Every thread waits with BACKOFF.
 *
 * <ul>
 *   <li>{@link #kilnRoundTrip} ({@link Mode#SampleTime}, us): {@code execute(x).get()} of
 *       driver -> worker's {@code inc(int)} -> driver, an int each way;</li>
 *   <li>{@link #aeronUdpRoundTrip}: the floor for it, a 4-byte ping and a 4-byte ack ({@link UdpEcho});</li>
 *   <li>{@link #kilnTensor} ({@link Mode#Throughput}, ops/s): one execution sends an F32 tensor of
 *       {@code bytes} to the worker, whose {@code check} reads its first and last element and returns a
 *       {@code long}; the bytes cross once, so bytes/s = ops/s x {@code bytes}. One execution at a time;
 *       {@code maxInflight} 2, slots sized to the encoded tensor and growth off, so nothing grows in the
 *       measured loop;</li>
 *   <li>{@link #aeronUdpBulk}: the floor for it, a message of {@code bytes} in frames of the
 *       publication's maximum payload, reassembled by the receiver into a buffer and acked.</li>
 * </ul>
 *
 * <p>{@code mtu} is the data publications' MTU ({@code KilnOptions.udp}; the raw Aeron publication gets
 * the same), the term length Kiln's default of 4 MiB on both. {@code authenticate} is
 * {@code KilnOptions.authenticateData}: the Kiln benchmarks run with and without authenticated data frames
 * (an HMAC-SHA256 tag on every frame and release message), so the option's cost is measured in the same run
 * against the same channel without it. Both "hosts" share this machine's cores.
 *
 * <p>Clean-up: the teardown closes the graph and the Kiln, which shuts the worker down; a worker still
 * running 20 s later is killed. Everything lives in one temporary folder under {@code java.io.tmpdir},
 * removed at the end.
 */
public class CrossHostBenchmark {

    /** Kiln's default term length for cross-host data publications. */
    static final int TERM_LENGTH = 4 * 1024 * 1024;
    private static final Duration JOIN_TIMEOUT = Duration.ofSeconds(60);
    private static final Duration WORKER_TIMEOUT = Duration.ofSeconds(10);
    private static final CompileOptions OPTIONS = CompileOptions.defaults().idle(IdleMode.BACKOFF)
            .submitTimeout(Duration.ofSeconds(60)).getTimeout(Duration.ofSeconds(60));

    /** The actor on the worker. Public: the worker JVM creates it. */
    public static final class Sink {

        /**
         * @param x any int
         * @return {@code x + 1}
         */
        public int inc(int x) {
            return x + 1;
        }

        /**
         * Reads the tensor's first and last element: proof that it arrived, without work that grows with its size.
         *
         * @param t an F32 tensor
         * @return its byte count plus its first element when the first and last are equal, else -1
         */
        public long check(Tensor t) {
            float first = t.getFloat(0);
            return first == t.getFloat(t.numel() - 1) ? t.byteSize() + (long) first : -1;
        }
    }

    /** A driver and one joined worker JVM on another host name, and the actor on the worker. */
    static final class Hosts implements AutoCloseable {
        final java.nio.file.Path dir;
        final Kiln kiln;
        final Process worker;
        final ActorRef<Sink> sink;

        Hosts(int mtu, boolean authenticate) throws IOException, InterruptedException, TimeoutException {
            dir = Files.createTempDirectory("kiln-bench-hosts-");
            Kiln k = null;
            Process w = null;
            try {
                byte[] secret = new byte[32];
                new SecureRandom().nextBytes(secret);
                for (int i = 0; i < secret.length; i++) {
                    secret[i] = (byte) ('a' + (secret[i] & 15)); // printable, as a secret file holds
                }
                java.nio.file.Path secretFile = Files.write(dir.resolve("secret"), secret);
                k = Kiln.local(KilnOptions.defaults().hostName("host-a").joinSecret(secret).listen("127.0.0.1:0")
                        .workerTimeout(WORKER_TIMEOUT).runDirectory(dir.resolve("run-a"))
                        .shmDirectory(Files.createDirectories(dir.resolve("shm-a"))).udp(mtu, TERM_LENGTH)
                        .authenticateData(authenticate));
                w = startWorker(k.joinEndpoint().orElseThrow(), secretFile);
                try {
                    k.awaitWorkers(1, JOIN_TIMEOUT);
                } catch (TimeoutException e) {
                    throw new IllegalStateException("the worker JVM did not join within " + JOIN_TIMEOUT + " ("
                            + (w.isAlive() ? "still running" : "exited with " + w.exitValue()) + "); its output:\n"
                            + log(), e);
                }
                sink = k.actor(Sink::new, ActorOptions.host("host-b"));
            } catch (IOException | InterruptedException | RuntimeException e) {
                stop(k, w);
                UdpEcho.deleteTree(dir);
                throw e;
            }
            kiln = k;
            worker = w;
        }

        private Process startWorker(String driver, java.nio.file.Path secretFile) throws IOException {
            List<String> command = new ArrayList<>();
            command.add(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString());
            for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
                if (!arg.startsWith("-agentlib:jdwp") && !arg.startsWith("-Xrunjdwp") && !arg.startsWith("-javaagent")) {
                    command.add(arg);
                }
            }
            command.addAll(List.of("-cp", System.getProperty("java.class.path"), KilnWorker.class.getName(),
                    "--driver", driver, "--secret-file", secretFile.toString(), "--name", "bench-b",
                    "--host-name", "host-b", "--listen", "127.0.0.1:0",
                    "--run-dir", dir.resolve("run-b").toString(),
                    "--shm-dir", Files.createDirectories(dir.resolve("shm-b")).toString(),
                    "--timeout", Long.toString(WORKER_TIMEOUT.toSeconds())));
            return new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(dir.resolve("worker.log").toFile()).start();
        }

        private String log() {
            try {
                return Files.readString(dir.resolve("worker.log"), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(no log: " + e + ")";
            }
        }

        /** Closes the Kiln (the worker leaves), kills a worker still there after 20 s, deletes the folder. */
        @Override
        public void close() {
            try {
                stop(kiln, worker);
            } finally {
                UdpEcho.deleteTree(dir);
            }
        }

        private void stop(Kiln k, Process w) {
            try {
                if (k != null) {
                    k.close();
                }
            } finally {
                if (w != null) {
                    try {
                        if (!w.waitFor(20, TimeUnit.SECONDS)) {
                            System.err.println("CrossHostBenchmark: worker pid " + w.pid()
                                    + " still running 20 s after the driver closed; killing it. Its output:\n" + log());
                            w.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        w.destroyForcibly();
                    }
                }
            }
        }
    }

    /** Kiln: driver -> worker's {@code inc} -> driver. */
    @State(Scope.Benchmark)
    public static class KilnLink {
        /** MTU of the UDP data publications, in bytes. */
        @Param({"1408"})
        public int mtu;
        /** Whether data frames are authenticated ({@code KilnOptions.authenticateData}). */
        @Param({"false", "true"})
        public boolean authenticate;

        Hosts hosts;
        CompiledGraph<Integer, Integer> graph;
        int next;

        /**
         * Starts the driver and the worker JVM, compiles the graph and checks its results.
         *
         * @throws Exception if the worker does not join or a result is wrong
         */
        @Setup(Level.Trial)
        public void setUp() throws Exception {
            hosts = new Hosts(mtu, authenticate);
            try {
                InputNode<Integer> in = Graph.input();
                graph = hosts.kiln.compile(in, hosts.sink.bind(Sink::inc, in), OPTIONS);
                if (!graph.plan().toString().contains("AERON_UDP")) {
                    throw new IllegalStateException("expected AERON_UDP edges, got:\n" + graph.plan());
                }
                for (int i = 0; i < 1000; i++) {
                    if (roundTrip() != next + 1) {
                        throw new IllegalStateException("inc(" + next + ") came back wrong");
                    }
                }
            } catch (Exception e) {
                tearDown();
                throw e;
            }
        }

        /** Closes the graph, the Kiln and the worker JVM. */
        @TearDown(Level.Trial)
        public void tearDown() {
            try {
                if (graph != null) {
                    graph.close();
                }
            } finally {
                hosts.close();
            }
        }

        int roundTrip() {
            next = (next + 1) & 63; // stays in Integer's box cache, both ways
            return graph.execute(next).get();
        }
    }

    /** Kiln: a tensor of {@code bytes} to the worker's {@code check}, a {@code long} back. */
    @State(Scope.Benchmark)
    public static class KilnTensor {
        /** The tensor's size in bytes: 1 MiB, 64 MiB. */
        @Param({"1048576", "67108864"})
        public int bytes;
        /** MTU of the UDP data publications, in bytes. */
        @Param({"1408"})
        public int mtu;
        /** Whether data frames are authenticated ({@code KilnOptions.authenticateData}). */
        @Param({"false", "true"})
        public boolean authenticate;

        Hosts hosts;
        Tensor tensor;
        CompiledGraph<Tensor, Long> graph;
        int stamp;

        /**
         * Starts the driver and the worker JVM, compiles the graph with slots for the encoded tensor and
         * checks its results.
         *
         * @throws Exception if the worker does not join or a result is wrong
         */
        @Setup(Level.Trial)
        public void setUp() throws Exception {
            tensor = Tensor.allocate(DType.F32, bytes / Float.BYTES);
            tensor.data().fill((byte) 0);
            try {
                hosts = new Hosts(mtu, authenticate);
                // encode answers minus the bytes it needs when the target is too small: the tensor and its header.
                long slotBytes = -new ValueCodec().encode(tensor, MemorySegment.NULL);
                InputNode<Tensor> in = Graph.input();
                graph = hosts.kiln.compile(in, hosts.sink.bind(Sink::check, in),
                        OPTIONS.maxInflight(2).bufferBytes(slotBytes).slotGrowth(false));
                for (int i = 0; i < 8; i++) {
                    send();
                }
            } catch (Exception e) {
                tearDown();
                throw e;
            }
        }

        /** Closes the graph, the Kiln and the worker JVM, and frees the tensor. */
        @TearDown(Level.Trial)
        public void tearDown() {
            try {
                if (graph != null) {
                    graph.close();
                }
                if (hosts != null) {
                    hosts.close();
                }
            } finally {
                tensor.close();
            }
        }

        long send() {
            stamp = (stamp + 1) & 63;
            tensor.setFloat(0, stamp);
            tensor.setFloat(tensor.numel() - 1, stamp);
            long r = graph.execute(tensor).get();
            if (r != bytes + stamp) {
                throw new IllegalStateException("check returned " + r + ", expected " + (bytes + stamp));
            }
            return r;
        }
    }

    /** Raw Aeron UDP between two media drivers: a message of {@code bytes} there, a 4-byte ack back. */
    @State(Scope.Benchmark)
    public static class Raw {
        /** MTU of the data publication, in bytes. */
        @Param({"1408"})
        public int mtu;

        java.nio.file.Path dir;
        UdpEcho echo;
        int stamp;

        void open(int bytes) throws IOException {
            dir = Files.createTempDirectory("kiln-bench-udp-");
            try {
                echo = new UdpEcho(dir, mtu, TERM_LENGTH, bytes);
                for (int i = 0; i < 100; i++) {
                    exchange();
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        int exchange() {
            stamp = (stamp + 1) & 63;
            int ack = echo.exchange(stamp);
            if (ack != stamp + 1) {
                throw new IllegalStateException("ack " + ack + ", expected " + (stamp + 1));
            }
            return ack;
        }

        void close() {
            try {
                if (echo != null) {
                    echo.close();
                }
            } finally {
                UdpEcho.deleteTree(dir);
            }
        }
    }

    /** {@link Raw} with 4-byte messages: a ping-pong. */
    @State(Scope.Benchmark)
    public static class RawPing extends Raw {
        /**
         * Starts both media drivers and the echo thread, and checks the acks.
         *
         * @throws IOException if the temporary folder cannot be created
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            open(Integer.BYTES);
        }

        /** Stops the echo thread and both media drivers, and deletes the folder. */
        @TearDown(Level.Trial)
        public void tearDown() {
            close();
        }
    }

    /** {@link Raw} with messages of {@code bytes}. */
    @State(Scope.Benchmark)
    public static class RawBulk extends Raw {
        /** The message's size in bytes: 1 MiB, 64 MiB. */
        @Param({"1048576", "67108864"})
        public int bytes;

        /**
         * Starts both media drivers and the echo thread, and checks the acks.
         *
         * @throws IOException if the temporary folder cannot be created
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            open(bytes);
        }

        /** Stops the echo thread and both media drivers, and deletes the folder. */
        @TearDown(Level.Trial)
        public void tearDown() {
            close();
        }
    }

    /**
     * @param k the graph driver -> worker -> driver
     * @return the execution's result
     */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public int kilnRoundTrip(KilnLink k) {
        return k.roundTrip();
    }

    /**
     * @param r the two media drivers and the echo thread
     * @return the ack
     */
    @Benchmark
    @BenchmarkMode(Mode.SampleTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public int aeronUdpRoundTrip(RawPing r) {
        return r.exchange();
    }

    /**
     * @param k the graph driver -> worker, the tensor
     * @return the worker's check
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public long kilnTensor(KilnTensor k) {
        return k.send();
    }

    /**
     * @param r the two media drivers and the echo thread
     * @return the ack
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public int aeronUdpBulk(RawBulk r) {
        return r.exchange();
    }
}
