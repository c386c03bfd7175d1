package dev.kiln.bench;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ValueCodec;
import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
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
import java.nio.file.Files;
import java.security.SecureRandom;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The cost of authenticated data frames ({@code KilnOptions.authenticateData}) on the channel alone: one
 * {@link AeronUdpChannel} between two embedded media drivers of this JVM over loopback (configured as
 * {@link UdpEcho}'s, the data publication with Kiln's 4 MiB terms), without and with a key, in the same run. The
 * JMH thread owns both sides: one operation offers an F32 tensor of {@code bytes} as the next sequence, pumps both
 * sides until the reader has all of it, checks its first and last element and releases it. No executor, no
 * worker JVM and no thread hand-off: what differs between the two runs is the channel's own work per frame (with
 * a key, a copy through a reused array and an HMAC-SHA256, on both sides).
 */
public class UdpChannelBenchmark {

    private static final long PEER_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(30);
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(60);

    /** A writer and a reader, each on its own media driver, and the tensor they carry. */
    @State(Scope.Benchmark)
    public static class Link {
        /** The tensor's size in bytes: 64 KiB, 1 MiB. */
        @Param({"65536", "1048576"})
        public int bytes;
        /** Whether the channel authenticates its frames. */
        @Param({"false", "true"})
        public boolean authenticate;
        /** MTU of the data publication, in bytes. */
        @Param({"1408"})
        public int mtu;

        java.nio.file.Path dir;
        MediaDriver driverA;
        MediaDriver driverB;
        Aeron clientA;
        Aeron clientB;
        AeronUdpChannel writer;
        AeronUdpChannel reader;
        Tensor tensor;
        long next;

        /**
         * Starts both media drivers, opens both sides, waits until they connect and checks a few transfers.
         *
         * @throws IOException if the temporary folder cannot be made
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            dir = Files.createTempDirectory("kiln-bench-udp-channel-");
            try {
                driverA = UdpEcho.launch(dir.resolve("aeron-a"));
                driverB = UdpEcho.launch(dir.resolve("aeron-b"));
                clientA = Aeron.connect(new Aeron.Context().aeronDirectoryName(driverA.aeronDirectoryName()));
                clientB = Aeron.connect(new Aeron.Context().aeronDirectoryName(driverB.aeronDirectoryName()));
                tensor = Tensor.allocate(DType.F32, bytes / Float.BYTES);
                tensor.data().fill((byte) 0);
                // encode answers minus the bytes it needs when the target is too small: the tensor and its header.
                long slotBytes = -new ValueCodec().encode(tensor, MemorySegment.NULL);
                ChannelSpec spec = new ChannelSpec(0, 0, 0, List.of(1), 2, slotBytes, Transport.AERON_UDP,
                        "UdpChannelBenchmark");
                AeronUdpChannel.Route route = new AeronUdpChannel.Route("127.0.0.1:" + UdpEcho.freePort(),
                        List.of("127.0.0.1:" + UdpEcho.freePort()), 1001, 1000, mtu, CrossHostBenchmark.TERM_LENGTH);
                byte[] key = null;
                if (authenticate) {
                    key = new byte[32];
                    new SecureRandom().nextBytes(key);
                }
                writer = AeronUdpChannel.writer(clientA, spec, route, new ValueCodec(), false, PEER_TIMEOUT_NS, key);
                reader = AeronUdpChannel.reader(clientB, spec, route, 0, new ValueCodec(), false, PEER_TIMEOUT_NS, key);
                long deadline = System.nanoTime() + WAIT_NS;
                // Both every round: the reader's first release, which the writer waits for, goes out when it is polled.
                while (!(reader.isConnected() & writer.isConnected())) {
                    check(deadline, "the channel's sides did not connect, sequence", 0);
                    Thread.onSpinWait();
                }
                for (int i = 0; i < 8; i++) {
                    send();
                }
            } catch (RuntimeException e) {
                tearDown();
                throw e;
            }
        }

        /** Closes both sides, both clients and both media drivers, and deletes the folder. */
        @TearDown(Level.Trial)
        public void tearDown() {
            try {
                for (AutoCloseable c : new AutoCloseable[] {reader, writer, clientB, clientA, driverB, driverA}) {
                    if (c != null) {
                        try {
                            c.close();
                        } catch (Exception e) {
                            System.err.println("UdpChannelBenchmark: closing " + c + ": " + e);
                        }
                    }
                }
                if (tensor != null) {
                    tensor.close();
                }
            } finally {
                UdpEcho.deleteTree(dir);
            }
        }

        /** Throws once past the deadline; {@code what} and {@code sequence} make its message (nothing is built before). */
        private void check(long deadline, String what, long sequence) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException(what + " " + sequence + " within 60 s; lost peer: writer "
                        + writer.lossReason() + ", reader " + reader.lossReason());
            }
        }

        long send() {
            long n = next++;
            float stamp = n & 63;
            tensor.setFloat(0, stamp);
            tensor.setFloat(tensor.numel() - 1, stamp);
            long deadline = System.nanoTime() + WAIT_NS;
            while (!writer.offer(n, tensor)) {
                reader.pump();
                check(deadline, "not sent: sequence", n);
            }
            Object value;
            while ((value = reader.poll(0, n)) == Channel.NOT_READY) {
                writer.pump();
                check(deadline, "not arrived: sequence", n);
            }
            Tensor t = (Tensor) value;
            if (t.getFloat(0) != stamp || t.getFloat(t.numel() - 1) != stamp) {
                throw new IllegalStateException("sequence " + n + " arrived wrong");
            }
            reader.release(0, n);
            return n;
        }
    }

    /**
     * @param l the channel and its tensor
     * @return the sequence sent
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public long transfer(Link l) {
        return l.send();
    }
}
