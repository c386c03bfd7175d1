package dev.kiln.transport;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * An {@link AeronUdpChannel} between this JVM and a child JVM ({@link AeronUdpChannelChild}), two
 * "hosts" with their own media drivers and directories talking UDP over 127.0.0.1: 2,000 sequences of
 * {@link MixedValues} (every native kind, a registered class, and tensors that make the slots grow),
 * each checked exactly on the other side; then the child is killed (no stream end is sent) and this
 * side must report its peer lost within a bounded time.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class AeronUdpChannelCrossProcessTest {

    private static final int COUNT = 2_000;
    private static final long CHILD_SECONDS = 180;
    /** Bound on noticing a killed peer: the drivers' 2 s liveness timeouts plus scheduling slack. */
    private static final long DETECT_MS = 15_000;
    private static final List<String> JVM_FLAGS = List.of("--enable-native-access=ALL-UNNAMED",
            "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow");

    private Path dir;
    private Path log;
    private UdpHost host;
    private Process child;

    @BeforeEach
    void setUp() throws IOException {
        dir = Files.createTempDirectory("kiln-aeron-test-");
        log = dir.resolve("child.log");
        host = UdpHost.start("parent", dir);
    }

    @AfterEach
    void tearDown() throws IOException, InterruptedException {
        if (child != null) {
            child.destroyForcibly();
            child.waitFor(CHILD_SECONDS, TimeUnit.SECONDS);
        }
        host.close();
        TempFiles.deleteTree(dir);
    }

    private void startChild(String role, String writerEndpoint, String readerEndpoint) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(System.getProperty("java.home") + "/bin/java");
        command.add("-Xmx256m");
        command.addAll(JVM_FLAGS);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), AeronUdpChannelChild.class.getName(),
                role, dir.toString(), writerEndpoint, readerEndpoint, String.valueOf(COUNT)));
        child = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private String readLog() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    private void awaitChildDone() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CHILD_SECONDS);
        while (!readLog().contains("done " + COUNT)) {
            if (!child.isAlive() || System.nanoTime() - deadline > 0) {
                fail("the child did not finish; its output:\n" + readLog());
            }
            Thread.sleep(10);
        }
    }

    /** Kills the child and returns how long {@code lost} took to become true, in milliseconds. */
    private long killChildAndTime(java.util.function.BooleanSupplier lost) throws InterruptedException {
        long start = System.nanoTime();
        child.destroyForcibly();
        assertTrue(child.waitFor(CHILD_SECONDS, TimeUnit.SECONDS), "the child was not killed");
        while (!lost.getAsBoolean()) {
            if (System.nanoTime() - start > TimeUnit.MILLISECONDS.toNanos(DETECT_MS)) {
                fail("the killed peer was not reported within " + DETECT_MS + " ms");
            }
            LockSupport.parkNanos(1_000_000);
        }
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    }

    @Test
    void aChildJvmReadsExactlyWhatThisJvmWritesThenDies() throws Exception {
        AeronUdpChannel.Route route = AeronUdpChannelChild.route(UdpHost.freeEndpoint(), UdpHost.freeEndpoint());
        try (AeronUdpChannel writer = AeronUdpChannel.writer(host.aeron(), AeronUdpChannelChild.spec(), route,
                MixedValues.codec(), true, AeronUdpChannelChild.PEER_TIMEOUT_NANOS, null)) {
            startChild("reader", route.writerEndpoint(), route.readerEndpoints().getFirst());
            assertNull(AeronUdpChannelChild.write(writer, COUNT), this::readLog);
            awaitChildDone();
            assertEquals(AeronUdpChannel.NO_PEER_LOST, writer.lostPeer());
            long ms = killChildAndTime(() -> writer.lostPeer() == 0);
            System.out.println("AeronUdpChannel: reader JVM killed, the writer knew after " + ms + " ms: "
                    + writer.lossReason());
        }
    }

    @Test
    void thisJvmReadsExactlyWhatAChildJvmWritesThenItDies() throws Exception {
        AeronUdpChannel.Route route = AeronUdpChannelChild.route(UdpHost.freeEndpoint(), UdpHost.freeEndpoint());
        try (AeronUdpChannel reader = AeronUdpChannel.reader(host.aeron(), AeronUdpChannelChild.spec(), route, 0,
                MixedValues.codec(), true, AeronUdpChannelChild.PEER_TIMEOUT_NANOS, null)) {
            startChild("writer", route.writerEndpoint(), route.readerEndpoints().getFirst());
            assertNull(AeronUdpChannelChild.read(reader, COUNT), this::readLog);
            awaitChildDone();
            assertEquals(AeronUdpChannel.NO_PEER_LOST, reader.lostPeer());
            long ms = killChildAndTime(() -> reader.lostPeer() == AeronUdpChannel.WRITER);
            System.out.println("AeronUdpChannel: writer JVM killed, the reader knew after " + ms + " ms: "
                    + reader.lossReason());
        }
        assertEquals(List.of(), host.errors());
    }
}
