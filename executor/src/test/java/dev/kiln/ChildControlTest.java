package dev.kiln;

import dev.kiln.executor.Codecs;
import dev.kiln.executor.ControlPlane;
import dev.kiln.executor.Message;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Method1;
import dev.kiln.transport.ValueCodec;
import io.aeron.Publication;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Child worker JVMs: their control stream is authenticated against a process of the same user on the
 * driver's Aeron directory, dynamic calls of any size cross or fail cleanly, and a frozen child is
 * lost after the worker timeout but carries on when it resumes within it.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ChildControlTest {

    @TempDir
    Path tmp;

    private Kiln kiln;

    /** An actor with side effects an attacker would want. */
    public static final class Victim {
        public Boolean touch(String path) throws IOException {
            Files.writeString(Path.of(path), "ran");
            return true;
        }

        private int calls;

        public int echo(int x) {
            return x;
        }

        public int count() {
            return ++calls;
        }

        public byte[] bytes(Integer n) {
            byte[] b = new byte[n];
            for (int i = 0; i < n; i++) {
                b[i] = (byte) i;
            }
            return b;
        }

        public Integer length(byte[] b) {
            return b.length;
        }

        public long pid() {
            return ProcessHandle.current().pid();
        }

        public String environment() {
            return String.join(",", System.getenv().keySet().stream().sorted().toList());
        }
    }

    private Kiln start(Duration workerTimeout) {
        kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")).workerTimeout(workerTimeout));
        return kiln;
    }

    @AfterEach
    void tearDown() {
        if (kiln != null) {
            kiln.close();
        }
    }

    private Path aeronDirectory() throws IOException {
        try (var dirs = Files.list(tmp.resolve("run"))) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("aeron-")).findFirst().orElseThrow();
        }
    }

    @Test
    void aProcessOnTheDriversAeronDirectoryCannotShutAChildDownOrRunItsActors() throws Exception {
        start(Duration.ofSeconds(10));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("victim"));
        assertEquals(1, kiln.call(v, Victim::echo, 1).get(30, TimeUnit.SECONDS));
        Path marker = tmp.resolve("forged-call-ran");
        ValueCodec codec = new ValueCodec();
        Method1<Victim, String, Boolean> touch = Victim::touch;
        byte[] call = Attacker.forged(new Message.Call(99, v.id(), 1, 0, Codecs.lambdaBytes(touch, codec),
                Codecs.valueBytes(new Object[] {marker.toString()}, codec)), 1L << 40);
        byte[] create = Attacker.forged(new Message.CreateActor(98, 4242, -1, "planted", Codecs.lambdaBytes(
                (ActorFactory<Victim>) Victim::new, codec)), (1L << 40) + 1);
        try (Attacker a = new Attacker(aeronDirectory().toString())) {
            Publication toChild = a.ipc(ControlPlane.CHILD_STREAM_BASE);
            io.aeron.Subscription tap = a.aeron.addSubscription(ControlPlane.IPC, ControlPlane.CHILD_STREAM_BASE);
            KilnTestSupport.awaitTrue("the tap is connected", Duration.ofSeconds(20), tap::isConnected);
            assertTrue(Attacker.offer(toChild, call, 10_000));
            assertTrue(Attacker.offer(toChild, create, 10_000));
            assertTrue(Attacker.offer(toChild, Attacker.shutdown(), 10_000));
            // A real CALL, captured on its way and sent again: the child must not run it twice.
            assertEquals(1, kiln.call(v, Victim::count).get(30, TimeUnit.SECONDS));
            java.util.List<byte[]> captured = Attacker.capture(tap, 2);
            for (byte[] frame : captured) {
                assertTrue(Attacker.offer(toChild, frame, 10_000));
                byte[] mutated = frame.clone();
                mutated[frame.length / 2] ^= 0x20;
                assertTrue(Attacker.offer(toChild, mutated, 10_000));
            }
            KilnTestSupport.awaitTrue(() -> "the child reports the drops: " + kiln.workerControlStats("victim"),
                    Duration.ofSeconds(20), () -> kiln.workerControlStats("victim").orElseThrow().replayed() >= 1
                            && kiln.workerControlStats("victim").orElseThrow().forged() >= 3);
        }
        assertFalse(Files.exists(marker), "a forged CALL ran in the child");
        assertEquals(2, kiln.call(v, Victim::echo, 2).get(30, TimeUnit.SECONDS), "a forged SHUTDOWN stopped it");
        assertEquals(2, kiln.call(v, Victim::count).get(30, TimeUnit.SECONDS), "a replayed CALL ran again");
        assertEquals(dev.kiln.ControlStats.NONE, kiln.controlStats(), "nothing forged reached the driver");
    }

    @Test
    void theChildsSecretIsNeitherOnItsCommandLineNorInItsEnvironment() throws Exception {
        start(Duration.ofSeconds(10));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("private"));
        long pid = kiln.call(v, Victim::pid).get(30, TimeUnit.SECONDS);
        String commandLine = Files.readString(Path.of("/proc/" + pid + "/cmdline"));
        assertTrue(commandLine.contains("WorkerMain"), commandLine);
        assertEquals(String.join(",", System.getenv().keySet().stream().sorted().toList()),
                kiln.call(v, Victim::environment).get(30, TimeUnit.SECONDS),
                "the child's environment is the driver's: no secret was added");
        assertTrue(commandLine.split("\u0000").length < 200, "no long argument: " + commandLine.length());
    }

    @Test
    void callsWhoseArgumentOrResultExceedsOneControlMessageCross() throws Exception {
        start(Duration.ofSeconds(10));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("big"));
        int n = 9 << 20;
        byte[] result = kiln.call(v, Victim::bytes, n).get(60, TimeUnit.SECONDS);
        assertEquals(n, result.length);
        assertEquals((byte) (n - 1), result[n - 1]);
        assertEquals(n, kiln.call(v, Victim::length, new byte[n]).get(60, TimeUnit.SECONDS));
    }

    @Test
    void aCallBeyondMaxCallBytesFailsAtOnceNamingTheLimitAndTheActorLives() throws Exception {
        kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")).maxCallBytes(1 << 20));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("limited"));
        IllegalArgumentException argument = assertThrows(IllegalArgumentException.class,
                () -> kiln.call(v, Victim::length, new byte[2 << 20]));
        assertTrue(argument.getMessage().contains("KilnOptions.maxCallBytes")
                && argument.getMessage().contains("1048576"), argument.getMessage());
        ExecutionException result = assertThrows(ExecutionException.class,
                () -> kiln.call(v, Victim::bytes, 2 << 20).get(30, TimeUnit.SECONDS));
        ActorTaskException failed = assertInstanceOf(ActorTaskException.class, result.getCause());
        assertTrue(failed.getCause().getMessage().contains("KilnOptions.maxCallBytes")
                && failed.getCause().getMessage().contains("1048576"), failed.getCause().getMessage());
        assertEquals(5, kiln.call(v, Victim::echo, 5).get(30, TimeUnit.SECONDS), "the actor lives");
        assertEquals((1 << 20) - 64, kiln.call(v, Victim::bytes, (1 << 20) - 64).get(30, TimeUnit.SECONDS).length,
                "just under the limit crosses");
    }

    @Test
    void aCallWhoseCapturedValuesExceedMaxCallBytesFailsAtOnceInsteadOfHanging() throws Exception {
        kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")).maxCallBytes(64 << 10));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("captures"));
        byte[] big = new byte[2 << 20]; // captured by the lambda, not an argument: once sent, and dropped unanswered
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> kiln.call(v, a -> a.length(big)));
        assertTrue(e.getMessage().contains("KilnOptions.maxCallBytes") && e.getMessage().contains("captured"),
                e.getMessage());
        assertEquals(5, kiln.call(v, Victim::echo, 5).get(30, TimeUnit.SECONDS), "the actor lives");
    }

    @Test
    void aCallersContinuationThatWaitsForAnotherCallDoesNotBlockTheControlPlane() throws Exception {
        start(Duration.ofSeconds(3));
        ActorRef<Victim> a = kiln.actor(Victim::new, ActorOptions.process("first"));
        ActorRef<Victim> b = kiln.actor(Victim::new, ActorOptions.process("second"));
        // Before: the continuation ran on the thread that receives every worker's replies, so its join() waited for
        // a reply that thread could no longer receive, and every worker was lost with it.
        int nested = kiln.call(a, Victim::echo, 1)
                .thenApply(x -> kiln.call(b, Victim::echo, x + 1).join())
                .get(30, TimeUnit.SECONDS);
        assertEquals(2, nested);
        assertEquals(7, kiln.call(a, Victim::echo, 7).get(30, TimeUnit.SECONDS), "the workers were not lost");
    }

    @Test
    void aChildFrozenPastTheWorkerTimeoutIsLostAndLeavesWhenResumed() throws Exception {
        try (LogCapture logged = LogCapture.from(java.util.logging.Level.INFO)) {
            frozenPastTheTimeout(logged);
        }
    }

    private void frozenPastTheTimeout(LogCapture logged) throws Exception {
        start(Duration.ofSeconds(2));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("frozen"));
        long pid = kiln.call(v, Victim::pid).get(30, TimeUnit.SECONDS);
        ProcessHandle child = ProcessHandle.of(pid).orElseThrow();
        KilnTestSupport.signal("STOP", pid);
        try {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> kiln.call(v, Victim::echo, 3).get(20, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("frozen"), e.getCause().getMessage());
            KilnTestSupport.awaitTrue("the driver declares the frozen child lost", Duration.ofSeconds(30),
                    () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("frozen")));
            assertTrue(child.isAlive(), "declared lost, not killed");
        } finally {
            KilnTestSupport.signal("CONT", pid);
        }
        child.onExit().get(30, TimeUnit.SECONDS);
        KilnTestSupport.awaitTrue(() -> "the child's exit status is logged: " + logged.messages(),
                Duration.ofSeconds(20), () -> logged.messages().stream().anyMatch(m -> m.contains("pid " + pid + ") exited with code "
                        + KilnWorker.EXIT_DECLARED_LOST + " (the driver had declared it lost)")));
    }

    @Test
    void aChildFrozenWithinTheWorkerTimeoutCarriesOn() throws Exception {
        start(Duration.ofSeconds(4));
        ActorRef<Victim> v = kiln.actor(Victim::new, ActorOptions.process("paused"));
        long pid = kiln.call(v, Victim::pid).get(30, TimeUnit.SECONDS);
        KilnTestSupport.signal("STOP", pid);
        Thread.sleep(1_500);
        KilnTestSupport.signal("CONT", pid);
        assertEquals(4, kiln.call(v, Victim::echo, 4).get(30, TimeUnit.SECONDS));
        assertTrue(ProcessHandle.of(pid).orElseThrow().isAlive());
    }
}
