package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A {@link ShmChannel} between this JVM and a child JVM ({@link ShmChannelChild}): 10,000 sequences of
 * {@link MixedValues} (every native kind, a registered class, and tensors that make the slots grow
 * several times), each checked exactly on the other side.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class ShmChannelCrossProcessTest {

    private static final int COUNT = 10_000;
    private static final long CHILD_SECONDS = 180;
    private static final List<String> JVM_FLAGS = List.of("--enable-native-access=ALL-UNNAMED",
            "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow");

    private Path dir;
    private Path log;
    private ExecutorService threads;

    /** @return the channel both JVMs use: 4 slots, 2 readers, 4 KiB slots to start with */
    static ChannelSpec spec() {
        return ShmChannelTest.spec(4, 2, 4096);
    }

    @BeforeEach
    void setUp() throws IOException {
        dir = TempFiles.directory();
        log = Files.createTempFile("kiln-child-", ".log");
        threads = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r, "cross-process");
            t.setDaemon(true);
            return t;
        });
    }

    @AfterEach
    void tearDown() throws IOException {
        threads.shutdownNow();
        TempFiles.deleteTree(dir);
        Files.deleteIfExists(log);
    }

    private Process startChild(String... args) throws IOException {
        return startChild(JVM_FLAGS, args);
    }

    private Process startChild(List<String> flags, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(System.getProperty("java.home") + "/bin/java");
        command.add("-Xmx256m");
        command.addAll(flags);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), ShmChannelChild.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private void assertChildSucceeded(Process child) throws IOException, InterruptedException {
        if (!child.waitFor(CHILD_SECONDS, TimeUnit.SECONDS)) {
            fail("the child JVM did not finish; its output:\n" + Files.readString(log));
        }
        assertEquals(0, child.exitValue(), () -> "child output:\n" + readLog());
    }

    private String readLog() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    private static String await(Future<String> task) throws InterruptedException, ExecutionException {
        try {
            return task.get(CHILD_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            task.cancel(true);
            return "timeout: the thread did not finish";
        }
    }

    private List<String> files() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void withoutNativeAccessWaitsPoll() throws Exception {
        // Denying native access makes the futex downcall fail to link: the JVM falls back to polling.
        List<String> flags = new ArrayList<>(JVM_FLAGS);
        flags.set(0, "--illegal-native-access=deny");
        Process child = startChild(flags, "both", dir.toString(), "2000", "polling");
        try {
            assertChildSucceeded(child);
            assertTrue(readLog().startsWith("futex unavailable"), this::readLog);
            assertEquals(List.of(), files());
        } finally {
            child.destroyForcibly();
        }
    }

    @Test
    void childReadsWhatThisProcessWrites() throws Exception {
        ShmChannel ch = ShmChannel.create(spec(), dir, "to-child", MixedValues.codec(), true, null, new Waker[2]);
        Process child = null;
        try {
            child = startChild("reader", ch.path().toString(), String.valueOf(COUNT), "0");
            Future<String> localReader = threads.submit(() -> ShmChannelChild.read(ch, 1, COUNT));
            Future<String> writer = threads.submit(() -> ShmChannelChild.write(ch, COUNT));
            assertNull(await(writer), this::readLog);
            assertNull(await(localReader), this::readLog);
            assertChildSucceeded(child);
            assertTrue(readLog().startsWith("futex available"), this::readLog);
            assertTrue(ch.awaitReleased(COUNT - 1 + spec().slots(), 0), "every reader released everything");
        } finally {
            if (child != null) {
                child.destroyForcibly();
            }
            ch.close();
        }
        assertEquals(List.of(), files(), "the writer's close removes its files");
    }

    @Test
    void thisProcessReadsWhatTheChildWrites() throws Exception {
        Process child = startChild("writer", dir.toString(), String.valueOf(COUNT), "from-child");
        try {
            Path ready = dir.resolve("ready");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CHILD_SECONDS);
            while (!Files.exists(ready)) {
                if (System.nanoTime() - deadline > 0 || !child.isAlive()) {
                    fail("the child did not create its channel; its output:\n" + readLog());
                }
                Thread.sleep(10);
            }
            Path file = dir.resolve("kiln-" + child.pid() + "-from-child.shm");
            try (ShmChannel ch = ShmChannel.open(spec(), file, MixedValues.codec(), new Waker[2])) {
                Future<String> reader0 = threads.submit(() -> ShmChannelChild.read(ch, 0, COUNT));
                Future<String> reader1 = threads.submit(() -> ShmChannelChild.read(ch, 1, COUNT));
                assertNull(await(reader0), this::readLog);
                assertNull(await(reader1), this::readLog);
            }
            assertChildSucceeded(child);
            assertEquals(List.of("ready"), files(), "the child's close removed its files");
        } finally {
            child.destroyForcibly();
        }
    }

    @Test
    void filesOfAKilledWriterAreStale() throws Exception {
        Process child = startChild("writer", dir.toString(), String.valueOf(Long.MAX_VALUE), "killed");
        try {
            Path ready = dir.resolve("ready");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CHILD_SECONDS);
            while (!Files.exists(ready)) {
                if (System.nanoTime() - deadline > 0 || !child.isAlive()) {
                    fail("the child did not create its channel; its output:\n" + readLog());
                }
                Thread.sleep(10);
            }
            String name = "kiln-" + child.pid() + "-killed.shm";
            assertTrue(files().contains(name));
            assertEquals(0, ShmChannel.removeStale(dir), "its writer still runs");
            child.destroyForcibly();
            assertTrue(child.waitFor(CHILD_SECONDS, TimeUnit.SECONDS), "the child was not killed");
            assertEquals(1, ShmChannel.removeStale(dir));
            assertEquals(List.of("ready"), files());
        } finally {
            child.destroyForcibly();
        }
    }
}
