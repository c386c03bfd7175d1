package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibraryTest {
    private static final String PROPERTY = "kiln.test.libfoo.path";
    private static final List<String> SONAMES = List.of("libkiln-test-foo.so.9", "libkiln-test-foo.so.8");

    @TempDir
    Path dir;

    @AfterEach
    void clearProperty() {
        System.clearProperty(PROPERTY);
    }

    @Test
    void propertyNamingAMissingFileIsReportedWithTheFix() {
        System.setProperty(PROPERTY, "/nonexistent/libkiln-test-foo.so.9");
        NativeLibrary lib = NativeLibrary.load("libfoo", PROPERTY, SONAMES, List.of(dir.toString()));
        assertFalse(lib.isLoaded());
        assertNull(lib.source());
        String reason = lib.failure();
        assertTrue(reason.startsWith("no libfoo: -D" + PROPERTY + "=/nonexistent/libkiln-test-foo.so.9 names no file"), reason);
        assertTrue(reason.contains("point " + PROPERTY + " at libkiln-test-foo.so.9"), reason);
    }

    @Test
    void propertyNamingAFolderWithoutTheLibraryListsTheNamesLookedFor() {
        System.setProperty(PROPERTY, dir.toString());
        String reason = NativeLibrary.load("libfoo", PROPERTY, SONAMES, List.of()).failure();
        assertTrue(reason.contains("-D" + PROPERTY + "=" + dir + " is a folder with none of "
                + "libkiln-test-foo.so.9, libkiln-test-foo.so.8 in it"), reason);
    }

    @Test
    void propertyNamingAFileThatIsNoLibrarySaysItCannotBeLoaded() throws IOException {
        Path junk = Files.writeString(dir.resolve("libkiln-test-foo.so.9"), "not an ELF file");
        System.setProperty(PROPERTY, junk.toString());
        String reason = NativeLibrary.load("libfoo", PROPERTY, SONAMES, List.of()).failure();
        assertTrue(reason.contains("-D" + PROPERTY + "=" + junk + " cannot be loaded: " + junk), reason);
    }

    @Test
    void propertyIsTheOnlyPlaceTriedWhenSet() {
        System.setProperty(PROPERTY, "/nonexistent");
        NativeLibrary lib = NativeLibrary.load("libc", PROPERTY, List.of("libc.so.6"), List.of());
        assertFalse(lib.isLoaded(), "a wrong explicit setting must be reported, not bypassed");
    }

    @Test
    void withoutPropertyTheReasonNamesEverySonameFolderAndTheProperty() throws IOException {
        Path cuda = Files.createDirectories(dir.resolve("cuda-13.0/lib64"));
        String reason = NativeLibrary.load("libfoo", PROPERTY, SONAMES,
                List.of(dir + "/cuda-13*/lib64", "/nonexistent/lib")).failure();
        assertEquals("no libfoo: looked for libkiln-test-foo.so.9, libkiln-test-foo.so.8 on the dynamic linker path"
                + " (LD_LIBRARY_PATH, ld.so.cache) and in " + dir + "/cuda-13*/lib64, /nonexistent/lib"
                + "; set -D" + PROPERTY + "=/path/to/libkiln-test-foo.so.9 (the file or its folder)", reason);
        assertTrue(Files.isDirectory(cuda));
    }

    @Test
    void anUnloadableFileInAKnownFolderIsNamedInTheReason() throws IOException {
        Path junk = Files.writeString(dir.resolve("libkiln-test-foo.so.8"), "junk");
        String reason = NativeLibrary.load("libfoo", PROPERTY, SONAMES, List.of(dir.toString())).failure();
        assertTrue(reason.contains(junk + " exists but cannot be loaded"), reason);
    }

    @Test
    void aLibraryOnTheLinkerPathLoadsAndBinds() throws Throwable {
        NativeLibrary libc = NativeLibrary.load("libc", PROPERTY, List.of("libc.so.6"), List.of());
        assertTrue(libc.isLoaded(), libc.failure());
        assertNull(libc.failure());
        assertEquals("libc.so.6 (dynamic linker)", libc.source());
        MethodHandle strlen = libc.downcall("strlen", FunctionDescriptor.of(JAVA_LONG, ADDRESS));
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(5L, (long) strlen.invokeExact(arena.allocateFrom("kiln!")));
        }
        NativeUnavailableException missing = assertThrows(NativeUnavailableException.class,
                () -> libc.downcall("kilnNoSuchFunction", FunctionDescriptor.ofVoid()));
        assertTrue(missing.getMessage().contains("has no symbol kilnNoSuchFunction"), missing.getMessage());
    }

    @Test
    void aLibraryInAFolderGivenByThePropertyLoads() {
        Path libc = Path.of("/lib/x86_64-linux-gnu/libc.so.6");
        System.setProperty(PROPERTY, libc.getParent().toString());
        NativeLibrary lib = NativeLibrary.load("libc", PROPERTY, List.of("libc.so.6"), List.of());
        assertTrue(lib.isLoaded(), lib.failure());
        assertEquals(libc.toString(), lib.source());
    }

    @Test
    void downcallOnAMissingLibraryThrowsTheDiagnosis() {
        NativeLibrary lib = NativeLibrary.load("libfoo", PROPERTY, SONAMES, List.of());
        NativeUnavailableException e = assertThrows(NativeUnavailableException.class,
                () -> lib.downcall("foo", FunctionDescriptor.ofVoid()));
        assertEquals(lib.failure(), e.getMessage());
    }

    @Test
    void pythonPackageFoldersCoverEveryPrefixAndSubfolderInOrder() {
        List<String> folders = NativeLibrary.pythonPackageFolders(List.of("nvidia/a/lib", "nvidia/b/lib"));
        String home = System.getProperty("user.home");
        int local = folders.indexOf(home + "/.local/lib/python3*/site-packages/nvidia/a/lib");
        assertTrue(local >= 0, folders.toString());
        assertEquals(List.of(home + "/.local/lib/python3*/site-packages/nvidia/a/lib",
                home + "/.local/lib/python3*/dist-packages/nvidia/a/lib",
                home + "/.local/lib/python3*/site-packages/nvidia/b/lib",
                home + "/.local/lib/python3*/dist-packages/nvidia/b/lib",
                "/usr/local/lib/python3*/site-packages/nvidia/a/lib"), folders.subList(local, local + 5));
        assertTrue(folders.contains("/opt/conda/lib/python3*/site-packages/nvidia/b/lib"), folders.toString());
        assertEquals(List.of("/usr/lib/python3/dist-packages/nvidia/a/lib", "/usr/lib/python3/dist-packages/nvidia/b/lib"),
                folders.subList(folders.size() - 2, folders.size()));
    }

    @Test
    void expandMatchesStarComponentsNewestFirstAndSkipsMissingFolders() throws IOException {
        for (String version : List.of("cuda-12.4", "cuda-13.0", "cuda-13.1")) {
            Files.createDirectories(dir.resolve(version).resolve("lib64"));
        }
        Files.createDirectories(dir.resolve("cuda-13.2"));
        assertEquals(List.of(dir.resolve("cuda-13.1/lib64"), dir.resolve("cuda-13.0/lib64")),
                NativeLibrary.expand(dir + "/cuda-13*/lib64"));
        assertEquals(List.of(dir.resolve("cuda-12.4/lib64")), NativeLibrary.expand(dir + "/cuda-12.4/lib64"));
        assertEquals(List.of(), NativeLibrary.expand(dir + "/nothing*/lib64"));
    }
}
