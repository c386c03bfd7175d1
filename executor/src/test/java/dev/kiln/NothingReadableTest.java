package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.transport.PrivateFiles;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Nothing readable by others: with the umask of the test JVM (022 here) and every directory Kiln uses inside one
 * that any user may enter, another user can read no file and list no directory of a driver that accepts workers,
 * its worker JVM and a joined worker, after values and a dynamic call crossed all three; the files hold those
 * values. The other user is {@code nobody}, through {@code setpriv} (so the test runs as root, else it is skipped);
 * modes and owners are checked as well.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class NothingReadableTest {

    private static final int NOBODY = 65534;

    /** Open to all, like /tmp: only Kiln's own modes keep others out of what it makes inside. */
    private Path base;

    /** Echoes, in a worker JVM or a joined worker. */
    public static final class Echo {
        public String echo(String s) {
            return s;
        }
    }

    @BeforeEach
    void setUp() throws IOException {
        base = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "kiln-readable-");
        Files.setPosixFilePermissions(base, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    @AfterEach
    void tearDown() throws IOException {
        PrivateFiles.deleteTree(base);
    }

    @Test
    void anotherUserCanReadNothingOfADriverItsWorkerJvmAndAJoinedWorker() throws Exception {
        assumeTrue(PrivateFiles.uid() == 0 && Files.isExecutable(Path.of("/usr/bin/setpriv")),
                "needs root and setpriv to read as another user");
        Path shmA = sharedDirectory("shm-a");
        Path shmB = sharedDirectory("shm-b");
        byte[] secret = new byte[32];
        new SecureRandom().nextBytes(secret);
        String payload = "kiln-private-" + HexFormat.of().formatHex(secret, 0, 8);
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(base.resolve("run-a")).shmDirectory(shmA)
                .joinSecret(secret).hostName("host-a"));
             KilnWorker worker = KilnWorker.join(KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret)
                     .name("w-b").hostName("host-b").runDirectory(base.resolve("run-b")).shmDirectory(shmB))) {
            assertEquals("w-b", kiln.awaitWorkers(1, Duration.ofSeconds(60)).get(0).name(), worker.name());
            ActorRef<Echo> child = kiln.actor(Echo::new, ActorOptions.process("child"));
            ActorRef<Echo> joined = kiln.actor(Echo::new, ActorOptions.host("host-b"));
            assertEquals(payload, kiln.call(child, Echo::echo, payload).get(60, TimeUnit.SECONDS));
            ActorRef<Echo> here = kiln.actor(Echo::new);
            InputNode<String> in = Graph.input();
            try (CompiledGraph<String, String> g = kiln.compile(in, here.bind(Echo::echo,
                    joined.bind(Echo::echo, child.bind(Echo::echo, in))),
                    CompileOptions.defaults().idle(IdleMode.BACKOFF).getTimeout(Duration.ofSeconds(60)))) {
                assertTrue(g.plan().toString().contains("SHARED_MEMORY") && g.plan().toString().contains("AERON_UDP"),
                        g.plan().toString());
                assertEquals(payload, g.execute(payload).get());

                List<Path> all = everythingIn(base);
                assertTrue(all.stream().anyMatch(f -> holds(f, payload)), "the files carry the values");
                for (Path p : all) {
                    checkPrivate(p);
                }
                Path control = Files.writeString(base.resolve("control"), "readable");
                Files.setPosixFilePermissions(control, PosixFilePermissions.fromString("rw-r--r--"));
                List<Path> shown = new ArrayList<>(all);
                shown.add(control);
                shown.add(base);
                // Like /dev/shm, the shared-memory directories may be listed (file names, not contents).
                assertEquals(Stream.of(control, base, shmA, shmB).map(Path::toString).sorted().toList(),
                        readableByNobody(shown).stream().sorted().toList(),
                        "what user nobody can read or list: only the control file and the open directories");
            }
        }
    }

    /** A directory like /dev/shm: anyone may create files in it, and only delete their own. */
    private Path sharedDirectory(String name) throws IOException {
        Path dir = Files.createDirectory(base.resolve(name));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
        Files.setAttribute(dir, "unix:mode", 01777);
        return dir;
    }

    /**
     * Kiln's directories are its owner's only (0700) and its shared-memory files 0600; files Aeron creates after
     * its start keep its mode and lie in such directories. The shared-memory directories stay open to all.
     */
    private void checkPrivate(Path p) throws IOException {
        assertTrue(PrivateFiles.ownedByThisUser(p), p + " is this user's");
        String mode = PosixFilePermissions.toString(Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS));
        Path top = base.relativize(p).getName(0);
        if (top.toString().startsWith("shm-")) {
            if (!p.getParent().equals(base)) {
                assertEquals("rw-------", mode, p + " is a shared-memory file");
            }
        } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            assertEquals("rwx------", mode, p.toString());
        } else {
            for (Path d = p.getParent(); !d.equals(base); d = d.getParent()) {
                assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(d)),
                        d + " on the way to " + p);
            }
        }
    }

    private static List<Path> everythingIn(Path dir) throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            return all.filter(p -> !p.equals(dir)).toList();
        }
    }

    private static boolean holds(Path file, String text) {
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            return false;
        }
        try {
            byte[] bytes = Files.readAllBytes(file);
            return new String(bytes, StandardCharsets.ISO_8859_1).contains(text);
        } catch (IOException e) {
            return false;
        }
    }

    /** @return the paths that user nobody can read (a file's first byte) or list (a directory), as strings */
    private static List<String> readableByNobody(List<Path> paths) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("/usr/bin/setpriv", "--reuid=" + NOBODY, "--regid=" + NOBODY,
                "--clear-groups", "--", "/bin/sh", "-c",
                "for f do if [ -d \"$f\" ]; then ls -- \"$f\" >/dev/null 2>&1 && echo \"$f\";"
                        + " else head -c 1 -- \"$f\" >/dev/null 2>&1 && echo \"$f\"; fi; done", "sh"));
        paths.forEach(p -> command.add(p.toString()));
        Process reader = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(reader.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(reader.waitFor(60, TimeUnit.SECONDS), "the reader finished");
        return out.lines().toList();
    }
}
