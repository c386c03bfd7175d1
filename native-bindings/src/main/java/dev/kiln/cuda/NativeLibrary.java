package dev.kiln.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * A shared library found by {@link #load}, or the diagnosis of why it was not found.
 *
 * <p>Lookup order: the system property, if set (a library file or the folder holding it; nothing
 * else is tried then, so a wrong setting is reported rather than silently bypassed); then each
 * soname through the dynamic linker ({@code LD_LIBRARY_PATH}, {@code ld.so.cache}); then each
 * soname in each known folder, where a folder pattern may hold {@code *} in a path component
 * ({@code /usr/local/cuda-13*}{@code /lib64}). A library, once loaded, stays loaded for the life of
 * the JVM. Instances are immutable and thread-safe.
 *
 * <p>Loading libraries and linking downcalls are restricted FFM operations: the JVM must run with
 * {@code --enable-native-access=ALL-UNNAMED}.
 */
@SuppressWarnings("restricted") // this class is the one place that opens libraries and links downcalls
public final class NativeLibrary {
    private final String name;
    private final SymbolLookup symbols;
    private final String source;
    private final String failure;

    /**
     * FFM calls into a library need {@code --enable-native-access} for this module, or the JDK warns (and a later
     * JDK refuses): say which flag, once per library, where the library is loaded.
     */
    private static void warnWithoutNativeAccess(String name) {
        Module m = NativeLibrary.class.getModule();
        if (!m.isNativeAccessEnabled()) {
            System.getLogger("dev.kiln").log(System.Logger.Level.WARNING, () -> "loading " + name + " through FFM"
                    + " without native access enabled: start the JVM with --enable-native-access="
                    + (m.isNamed() ? m.getName() : "ALL-UNNAMED") + " (see the README's \"JVM flags\")");
        }
    }

    private NativeLibrary(String name, SymbolLookup symbols, String source, String failure) {
        this.name = name;
        this.symbols = symbols;
        this.source = source;
        this.failure = failure;
    }

    /**
     * Looks the library up; never throws.
     *
     * @param name     the library's short name for messages, e.g. {@code libcudart}
     * @param property the system property that names the library file or its folder
     * @param sonames  the file names to try, preferred first
     * @param folders  the folders to try after the dynamic linker, as patterns (see class doc)
     * @return the loaded library, or one whose {@link #failure()} says why it was not loaded
     */
    public static NativeLibrary load(String name, String property, List<String> sonames, List<String> folders) {
        warnWithoutNativeAccess(name);
        String fix = "; set -D" + property + "=/path/to/" + sonames.getFirst() + " (the file or its folder)";
        String explicit = System.getProperty(property);
        if (explicit != null && !explicit.isBlank()) {
            return loadExplicit(name, property, explicit.strip(), sonames);
        }
        List<String> errors = new ArrayList<>();
        for (String soname : sonames) {
            try {
                return found(name, SymbolLookup.libraryLookup(soname, Arena.global()), soname + " (dynamic linker)");
            } catch (IllegalArgumentException notOnLinkerPath) {
                // expected when the library is not on the linker path; the folders come next
            }
        }
        for (String pattern : folders) {
            for (Path folder : expand(pattern)) {
                for (String soname : sonames) {
                    Path file = folder.resolve(soname);
                    if (Files.exists(file)) {
                        try {
                            return found(name, SymbolLookup.libraryLookup(file, Arena.global()), file.toString());
                        } catch (IllegalArgumentException e) {
                            errors.add(file + " exists but cannot be loaded (" + e.getMessage() + ")");
                        }
                    }
                }
            }
        }
        String reason = "no " + name + ": looked for " + String.join(", ", sonames)
                + " on the dynamic linker path (LD_LIBRARY_PATH, ld.so.cache) and in "
                + String.join(", ", folders)
                + (errors.isEmpty() ? "" : "; " + String.join("; ", errors))
                + fix;
        return new NativeLibrary(name, null, null, reason);
    }

    private static NativeLibrary loadExplicit(String name, String property, String value, List<String> sonames) {
        Path path = Path.of(value);
        String setting = "-D" + property + "=" + value;
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(path)) {
            sonames.stream().map(path::resolve).filter(Files::exists).forEach(files::add);
            if (files.isEmpty()) {
                return new NativeLibrary(name, null, null, "no " + name + ": " + setting
                        + " is a folder with none of " + String.join(", ", sonames)
                        + " in it; point " + property + " at the library file or the folder that holds it");
            }
        } else if (Files.exists(path)) {
            files.add(path);
        } else {
            return new NativeLibrary(name, null, null, "no " + name + ": " + setting
                    + " names no file or folder; point " + property + " at " + sonames.getFirst()
                    + " or the folder that holds it, or unset it to search the usual places");
        }
        List<String> errors = new ArrayList<>();
        for (Path file : files) {
            try {
                return found(name, SymbolLookup.libraryLookup(file, Arena.global()), file.toString());
            } catch (IllegalArgumentException e) {
                errors.add(file + " (" + e.getMessage() + ")");
            }
        }
        return new NativeLibrary(name, null, null, "no " + name + ": " + setting + " cannot be loaded: "
                + String.join("; ", errors) + "; is it a " + name + " shared library for this platform?");
    }

    private static NativeLibrary found(String name, SymbolLookup symbols, String source) {
        return new NativeLibrary(name, symbols, source, null);
    }

    /**
     * Expands a folder pattern whose path components may hold {@code *} (glob syntax) into the
     * existing folders it matches, newest-looking first (names sorted in reverse), so that
     * {@code cuda-13.1} comes before {@code cuda-13.0}.
     *
     * @param pattern an absolute folder path, possibly with {@code *} in some components
     * @return the existing folders that match; empty when none do
     */
    public static List<Path> expand(String pattern) {
        Path absolute = Path.of(pattern);
        List<Path> current = List.of(absolute.getRoot() == null ? Path.of("") : absolute.getRoot());
        for (Path component : absolute) {
            String part = component.toString();
            List<Path> next = new ArrayList<>();
            for (Path base : current) {
                if (part.indexOf('*') < 0) {
                    next.add(base.resolve(part));
                } else {
                    next.addAll(children(base, FileSystems.getDefault().getPathMatcher("glob:" + part)));
                }
            }
            current = next;
        }
        return current.stream().filter(Files::isDirectory).toList();
    }

    /**
     * Folder patterns for libraries shipped in Python wheels (the {@code nvidia-*} packages): each
     * sub-folder under the {@code site-packages} and {@code dist-packages} of {@code $VIRTUAL_ENV},
     * {@code $CONDA_PREFIX} (when set), {@code ~/.local}, {@code /usr/local}, {@code /usr} and
     * {@code /opt/conda} ({@code lib/python3*}), then under {@code /usr/lib/python3/dist-packages}.
     * Reads the environment on each call; thread-safe.
     *
     * @param subfolders folders relative to site-packages, e.g. {@code nvidia/nccl/lib}, preferred first
     * @return the patterns, in search order (see {@link #expand})
     */
    public static List<String> pythonPackageFolders(List<String> subfolders) {
        List<String> prefixes = new ArrayList<>();
        for (String variable : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String prefix = System.getenv(variable);
            if (prefix != null && !prefix.isBlank()) {
                prefixes.add(prefix);
            }
        }
        prefixes.addAll(List.of(System.getProperty("user.home") + "/.local", "/usr/local", "/usr", "/opt/conda"));
        List<String> folders = new ArrayList<>();
        for (String prefix : prefixes) {
            for (String subfolder : subfolders) {
                folders.add(prefix + "/lib/python3*/site-packages/" + subfolder);
                folders.add(prefix + "/lib/python3*/dist-packages/" + subfolder);
            }
        }
        for (String subfolder : subfolders) {
            folders.add("/usr/lib/python3/dist-packages/" + subfolder);
        }
        return List.copyOf(folders);
    }

    private static List<Path> children(Path base, PathMatcher matcher) {
        if (!Files.isDirectory(base)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(base)) {
            return entries.filter(p -> matcher.matches(p.getFileName()))
                    .sorted(Comparator.comparing((Path p) -> p.getFileName().toString()).reversed())
                    .toList();
        } catch (IOException unreadable) {
            return List.of();
        }
    }

    /**
     * Says whether the library was loaded.
     *
     * @return true when loaded
     */
    public boolean isLoaded() {
        return symbols != null;
    }

    /**
     * The library's short name, as given to {@link #load}.
     *
     * @return e.g. {@code libcudart}
     */
    public String name() {
        return name;
    }

    /**
     * Where the library was loaded from.
     *
     * @return a file path, or a soname resolved by the dynamic linker; null when not loaded
     */
    public String source() {
        return source;
    }

    /**
     * Why the library was not loaded.
     *
     * @return the diagnosis, or null when it was loaded
     */
    public String failure() {
        return failure;
    }

    /**
     * Makes a downcall handle for one of the library's functions.
     *
     * @param symbol     the C function name
     * @param descriptor its C signature
     * @return the handle
     * @throws NativeUnavailableException when the library is not loaded or lacks the symbol
     */
    public MethodHandle downcall(String symbol, FunctionDescriptor descriptor) {
        if (symbols == null) {
            throw new NativeUnavailableException(failure);
        }
        return Linker.nativeLinker().downcallHandle(symbols.find(symbol).orElseThrow(() ->
                new NativeUnavailableException(name + " loaded from " + source + " has no symbol " + symbol
                        + ": it is older than Kiln needs, or not the library it is named after")), descriptor);
    }

    /**
     * Initializes a bindings class whose static fields are the library's downcall handles (made
     * with {@link #downcall}), so that every symbol is checked once, up front.
     *
     * @param lookup  a lookup with access to {@code handles}
     * @param handles the class holding the handles
     * @return null when every handle was made, else why not
     */
    public String bind(MethodHandles.Lookup lookup, Class<?> handles) {
        if (symbols == null) {
            return failure;
        }
        try {
            lookup.ensureInitialized(handles);
            return null;
        } catch (ExceptionInInitializerError e) {
            return e.getCause() instanceof NativeUnavailableException u ? u.getMessage() : String.valueOf(e.getCause());
        } catch (IllegalAccessException e) {
            throw new IllegalArgumentException(handles + " is not accessible from " + lookup, e);
        }
    }

    /**
     * What a downcall's {@code catch (Throwable t)} throws: errors and runtime exceptions
     * unchanged, anything else (no downcall declares one) wrapped.
     *
     * @param t what {@code invokeExact} threw
     * @return the exception to throw; an {@link Error} is thrown directly
     */
    public static RuntimeException rethrow(Throwable t) {
        if (t instanceof Error e) {
            throw e;
        }
        return t instanceof RuntimeException r ? r : new IllegalStateException("checked exception from a downcall", t);
    }
}
