package dev.kiln.executor;

import dev.kiln.ChildJvm;
import dev.kiln.transport.PrivateFiles;
import io.aeron.Aeron;
import io.aeron.CommonContext;
import io.aeron.Publication;
import io.aeron.driver.MediaDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Aeron directories made private, and removed only once their media driver is dead: by its process and by
 * Aeron's heartbeat, never a live or stopped driver's, never another user's.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class AeronDirectoriesTest {

    @TempDir
    Path tmp;

    private static String mode(Path p) throws IOException {
        return PosixFilePermissions.toString(Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void theRunDirectoryTheDriversDirectoryAndItsFilesAreTheOwnersOnlyWhateverTheUmask() throws IOException {
        Path run = tmp.resolve("a/run");
        try (MediaDriver driver = AeronDirectories.launch(run, "Opt.run", "t/../x y", new MediaDriver.Context());
             Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
             Publication p = aeron.addPublication("aeron:ipc?term-length=65536", 7)) {
            Path dir = Path.of(driver.aeronDirectoryName());
            assertEquals(run.resolve("aeron-" + ProcessHandle.current().pid() + "-t_.._x_y"), dir,
                    "a label cannot leave the run directory");
            assertEquals("rwx------", mode(run));
            assertEquals("rwx------", mode(tmp.resolve("a")));
            assertEquals("rwx------", mode(dir));
            assertEquals("rw-------", mode(dir.resolve("cnc.dat")));
            assertTrue(p.maxMessageLength() > 0);
            // Log buffers made after the start keep Aeron's mode, but only inside directories no one else may enter.
            try (Stream<Path> all = Files.walk(run)) {
                for (Path f : all.toList()) {
                    for (Path d = f.getParent(); d != null && d.startsWith(run); d = d.getParent()) {
                        assertEquals("rwx------", mode(d), "on the way to " + f);
                        assertTrue(PrivateFiles.ownedByThisUser(d));
                    }
                }
            }
        }
        try (Stream<Path> left = Files.list(run)) {
            assertEquals(List.of(), left.toList(), "the driver deletes its directory when it closes");
        }
    }

    @Test
    void aRunDirectoryOpenToOthersIsRefusedBeforeAnyDriverStarts() throws IOException {
        Path run = Files.createDirectories(tmp.resolve("run"));
        Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxr-xr-x"));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> AeronDirectories.launch(run, "KilnOptions.runDirectory", "x", new MediaDriver.Context()));
        assertTrue(e.getMessage().contains("chmod 700 " + run), e.getMessage());
        try (Stream<Path> left = Files.list(run)) {
            assertEquals(List.of(), left.toList());
        }
    }

    @Test
    void onlyTheDirectoriesOfDeadDriversAreRemoved() throws Exception {
        Path run = PrivateFiles.ensurePrivateDirectory(tmp.resolve("run"), "run", "o");
        Path shm = Files.createDirectories(tmp.resolve("shm"));
        long timeoutMs = 300;
        try (MediaDriver live = AeronDirectories.launch(run, "o", "live", new MediaDriver.Context());
             ChildJvm stopped = ChildJvm.start("dev.kiln.CrashingDriver", tmp.resolve("stopped.log"),
                     Duration.ofSeconds(60), run.toString(), shm.toString());
             ChildJvm killed = ChildJvm.start("dev.kiln.CrashingDriver", tmp.resolve("killed.log"),
                     Duration.ofSeconds(60), run.toString(), shm.toString())) {
            Path stoppedDir = stopped.aeronDirectory(run);
            Path killedDir = killed.aeronDirectory(run);
            Path theirs = Files.createDirectory(run.resolve("aeron-" + deadPid() + "-theirs"), PrivateFiles.DIRECTORY);
            boolean root = PrivateFiles.uid() == 0;
            if (root) {
                Files.setAttribute(theirs, "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
            }
            Path notOurs = Files.createDirectory(run.resolve("aeron-data")); // no pid: not a Kiln driver's
            stopped.signal("STOP");
            killed.signal("KILL");
            assertTrue(killed.process().waitFor(10, TimeUnit.SECONDS));
            awaitInactive(killedDir, timeoutMs);
            awaitInactive(stoppedDir, timeoutMs);

            assertEquals(1, AeronDirectories.removeStale(run, timeoutMs));

            assertFalse(Files.exists(killedDir), "the killed driver's directory");
            assertTrue(Files.exists(stoppedDir), "a stopped driver's heartbeat is old, but its process lives");
            assertTrue(Files.exists(Path.of(live.aeronDirectoryName())), "this process's live driver");
            assertTrue(Files.exists(notOurs));
            assertEquals(root, Files.exists(theirs), "another user's directory stays (only root could give it away)");
            stopped.signal("CONT");
        }
    }

    @Test
    void aRunDirectoryThatIsNotPrivateIsNotSwept() throws Exception {
        Path run = Files.createDirectories(tmp.resolve("open"));
        Path dead = Files.createDirectory(run.resolve("aeron-" + deadPid() + "-x"));
        Files.setLastModifiedTime(dead, java.nio.file.attribute.FileTime.fromMillis(0));
        Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertEquals(0, AeronDirectories.removeStale(run, 1));
        assertTrue(Files.exists(dead), "a directory others could write into may hold anything: left alone");
        Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwx------"));
        assertEquals(1, AeronDirectories.removeStale(run, 1), "a dead driver's directory without a CnC file, old");
    }

    /** Waits (bounded) until Aeron's own check says the directory's driver is not active with this timeout. */
    static void awaitInactive(Path dir, long timeoutMs) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs) + TimeUnit.SECONDS.toNanos(30);
        while (CommonContext.isDriverActive(dir.toFile(), timeoutMs, s -> { })) {
            if (System.nanoTime() - deadline > 0) {
                fail("the driver in " + dir + " still looks active");
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
        }
    }

    static long deadPid() throws IOException, InterruptedException {
        Process p = new ProcessBuilder("true").start();
        assertEquals(0, p.waitFor());
        return p.pid();
    }
}
