package dev.kiln.transport;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.kiln.transport.InProcessChannelTest.joinOrFail;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

@Timeout(value = 2, unit = TimeUnit.MINUTES)
class FutexTest {

    private Path dir;
    private Arena arena;
    /** A word in a shared file mapping, as in a channel. */
    private MemorySegment word;

    @BeforeEach
    void mapWord() throws IOException {
        assumeTrue(Futex.isAvailable(), "futex is not available here");
        dir = TempFiles.directory();
        arena = Arena.ofShared();
        try (FileChannel file = FileChannel.open(dir.resolve("word"), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            word = file.map(FileChannel.MapMode.READ_WRITE, 0, 4096, arena).asSlice(64, 4);
        }
    }

    @AfterEach
    void unmap() throws IOException {
        if (arena != null) {
            arena.close();
        }
        TempFiles.deleteTree(dir);
    }

    @Test
    void availableOnLinuxX86_64() {
        String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch");
        assertEquals(os.startsWith("linux") && (arch.equals("amd64") || arch.equals("x86_64")), Futex.isAvailable());
    }

    @Test
    void wakeWakesASleeper() throws InterruptedException {
        AtomicInteger result = new AtomicInteger(-1);
        Thread waiter = new Thread(() -> result.set(
                Futex.await(word, 0, TimeUnit.MINUTES.toNanos(5)) ? 1 : 0), "futex-waiter");
        waiter.setDaemon(true);
        waiter.start();
        // The word stays 0, so only a wake that finds the waiter asleep lets it return before its 5-minute timeout.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        int woken = 0;
        while (woken == 0) {
            if (System.nanoTime() - deadline > 0) {
                fail("the waiter never went to sleep on the word");
            }
            Thread.sleep(1);
            woken = Futex.wake(word, Integer.MAX_VALUE);
        }
        assertEquals(1, woken);
        joinOrFail(waiter);
        assertEquals(1, result.get(), "a woken wait returns true");
    }

    @Test
    void timeoutReturnsFalse() {
        assertFalse(Futex.await(word, 0, TimeUnit.MILLISECONDS.toNanos(20)));
        assertFalse(Futex.await(word, 0, 1));
        assertFalse(Futex.await(word, 0, 0), "no time to wait");
        assertFalse(Futex.await(word, 0, -5));
    }

    @Test
    void changedWordReturnsAtOnce() {
        word.set(ValueLayout.JAVA_INT, 0, 7);
        assertTrue(Futex.await(word, 6, TimeUnit.MINUTES.toNanos(5)), "the word no longer holds the expected value");
    }

    @Test
    void wakeWithoutSleepersWakesNobody() {
        assertEquals(0, Futex.wake(word, 1));
    }

    @Test
    void wakesSleepersOfAnotherMappingOfTheSameFile() throws IOException, InterruptedException {
        MemorySegment other;
        try (FileChannel file = FileChannel.open(dir.resolve("word"), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            other = file.map(FileChannel.MapMode.READ_WRITE, 0, 4096, arena).asSlice(64, 4);
        }
        assertTrue(other.address() != word.address(), "two mappings, as in two processes");
        AtomicInteger result = new AtomicInteger(-1);
        Thread waiter = new Thread(() -> result.set(
                Futex.await(other, 0, TimeUnit.MINUTES.toNanos(5)) ? 1 : 0), "futex-waiter");
        waiter.setDaemon(true);
        waiter.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (Futex.wake(word, 1) == 0) {
            if (System.nanoTime() - deadline > 0) {
                fail("the waiter on the other mapping was never woken");
            }
            Thread.sleep(1);
        }
        joinOrFail(waiter);
        assertEquals(1, result.get());
    }
}
