package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import io.aeron.CommonContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Clean after every crash: a new runtime removes the Aeron directory of a media driver whose JVM was killed, and
 * {@code Kiln.close()} removes the shared-memory files of a hung worker JVM it had to kill.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CrashCleanupTest {

    @TempDir
    Path tmp;

    /** Echoes, in a worker JVM. */
    public static final class Echo {
        public int echo(int x) {
            return x;
        }

        public long pid() {
            return ProcessHandle.current().pid();
        }
    }

    @Test
    void theAeronDirectoriesOfKilledDriverJvmsAreRemovedByTheNextKilnAndTheNextKilnWorker() throws Exception {
        Path run = tmp.resolve("run");
        Path shm = Files.createDirectories(tmp.resolve("shm"));
        Path forKiln;
        Path forWorker;
        try (ChildJvm a = ChildJvm.start(CrashingDriver.class.getName(), tmp.resolve("a.log"), Duration.ofSeconds(60),
                run.toString(), shm.toString());
             ChildJvm b = ChildJvm.start(CrashingDriver.class.getName(), tmp.resolve("b.log"), Duration.ofSeconds(60),
                     run.toString(), shm.toString())) {
            forKiln = a.aeronDirectory(run);
            forWorker = b.aeronDirectory(run);
            a.signal("KILL");
            b.signal("KILL");
            assertTrue(a.process().waitFor(10, TimeUnit.SECONDS) && b.process().waitFor(10, TimeUnit.SECONDS));
        }
        assertTrue(Files.isDirectory(forKiln) && Files.isDirectory(forWorker), "a killed driver leaves its directory");
        // Aeron's own liveness rule: the driver's heartbeat must be older than Aeron's driver timeout (10 s).
        KilnTestSupport.awaitTrue("Aeron sees both drivers dead", Duration.ofSeconds(60),
                () -> !CommonContext.isDriverActive(forKiln.toFile(), CommonContext.DEFAULT_DRIVER_TIMEOUT_MS, s -> { })
                        && !CommonContext.isDriverActive(forWorker.toFile(), CommonContext.DEFAULT_DRIVER_TIMEOUT_MS,
                        s -> { }));

        Kiln.local(KilnOptions.defaults().runDirectory(run).shmDirectory(shm)).close();
        assertEquals(List.of(), list(run), "the next Kiln removed both: it removes every dead driver's directory");

        // The same for a KilnWorker: another killed driver, and a worker that removes its directory, then fails to join.
        Path again;
        try (ChildJvm c = ChildJvm.start(CrashingDriver.class.getName(), tmp.resolve("c.log"), Duration.ofSeconds(60),
                run.toString(), shm.toString())) {
            again = c.aeronDirectory(run);
            c.signal("KILL");
            assertTrue(c.process().waitFor(10, TimeUnit.SECONDS));
        }
        KilnTestSupport.awaitTrue("Aeron sees the driver dead", Duration.ofSeconds(60),
                () -> !CommonContext.isDriverActive(again.toFile(), CommonContext.DEFAULT_DRIVER_TIMEOUT_MS, s -> { }));
        byte[] secret = new byte[32];
        assertThrows(RuntimeException.class, () -> KilnWorker.join(KilnWorker.Options.of("127.0.0.1:9", secret)
                .runDirectory(run).shmDirectory(shm).timeout(Duration.ofSeconds(1))), "nothing listens on port 9");
        assertFalse(Files.exists(again), "the worker removed it when it started");
        assertEquals(List.of(), list(run));
    }

    @Test
    void closeRemovesTheSharedMemoryFilesOfAHungWorkerItHadToKill() throws Exception {
        Path shm = Files.createDirectories(tmp.resolve("shm"));
        Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")).shmDirectory(shm));
        long pid;
        try {
            ActorRef<Echo> remote = kiln.actor(Echo::new, ActorOptions.process("hung"));
            ActorRef<Echo> local = kiln.actor(Echo::new);
            pid = kiln.call(remote, Echo::pid).get(60, TimeUnit.SECONDS);
            assertNotEquals(ProcessHandle.current().pid(), pid);
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, local.bind(Echo::echo, remote.bind(Echo::echo, in)),
                    CompileOptions.defaults().idle(IdleMode.BACKOFF).teardownTimeout(Duration.ofSeconds(1)));
            assertEquals(7, g.execute(7).get(Duration.ofSeconds(60)));
            assertFalse(filesOf(shm, pid).isEmpty(), "the worker wrote a shared-memory channel");
            KilnTestSupport.signal("STOP", pid);
        } finally {
            kiln.close(); // the graph's teardown times out, the worker does not exit when asked: it is killed
        }
        assertTrue(ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true), "the hung worker was killed");
        assertEquals(List.of(), filesOf(shm, pid), "the files of the killed worker");
        assertEquals(List.of(), filesOf(shm, ProcessHandle.current().pid()), "the driver's own files");
    }

    /** Files whose name says process {@code pid} made them. */
    private static List<Path> filesOf(Path dir, long pid) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().startsWith("kiln-" + pid + "-")).toList();
        }
    }

    private static List<Path> list(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.toList();
        }
    }
}
