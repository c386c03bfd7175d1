package dev.kiln.executor;

import java.io.File;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The automatic class path of a worker JVM: one that works wherever the driver runs, not only from a plain
 * {@code java -cp}. Under {@code mvn exec:java} the driver's {@code java.class.path} is Maven's launcher and the
 * application lives in a {@code URLClassLoader}; under {@code java -jar app.jar} it is the fat jar; an IDE may load
 * the application through a class loader of its own. So the class path is, in this order, each entry once and
 * only local files and directories that exist (a {@code file:} URL; nothing from the network):
 * <ol>
 *   <li>the entries of {@code java.class.path};</li>
 *   <li>the code sources (where they were loaded from) of Kiln's classes and of its dependencies' (Aeron, Agrona,
 *       Fory), looked up without initialising them;</li>
 *   <li>the URLs of every {@code URLClassLoader} in the chain of the thread context class loader and of the
 *       loaders of Kiln's and the given classes;</li>
 *   <li>the code sources of the given classes (the registered types, the actor factory).</li>
 * </ol>
 * Stateless.
 */
public final class WorkerClassPath {

    /** Classes whose jars (or directories) a worker needs; a missing one (an optional dependency) is skipped. */
    private static final List<String> NEEDED = List.of("dev.kiln.executor.WorkerMain", "dev.kiln.Kiln",
            "dev.kiln.graph.Graph", "dev.kiln.compiler.GraphCompiler", "dev.kiln.transport.ValueCodec",
            "dev.kiln.tensor.Tensor", "dev.kiln.cuda.NativeCallException", "io.aeron.Aeron",
            "io.aeron.driver.MediaDriver", "org.agrona.DirectBuffer",
            "org.apache.fory.Fory");

    private WorkerClassPath() {
    }

    /**
     * @param classes the user's classes a worker needs (registered types, actor factories); may be empty
     * @return the automatic class path, each entry once, in the order above
     */
    public static List<Path> automatic(Collection<Class<?>> classes) {
        Set<Path> out = new LinkedHashSet<>();
        for (String entry : System.getProperty("java.class.path", "").split(File.pathSeparator)) {
            if (!entry.isEmpty()) {
                addIfExists(out, Path.of(entry));
            }
        }
        ClassLoader kilns = WorkerClassPath.class.getClassLoader();
        for (String name : NEEDED) {
            try {
                addCodeSource(out, Class.forName(name, false, kilns));
            } catch (ClassNotFoundException | LinkageError e) {
                // an optional dependency that is absent: the worker does without it as the driver does
            }
        }
        List<ClassLoader> loaders = new ArrayList<>();
        loaders.add(Thread.currentThread().getContextClassLoader());
        loaders.add(kilns);
        for (Class<?> c : classes) {
            loaders.add(c.getClassLoader());
        }
        Set<ClassLoader> seen = new LinkedHashSet<>();
        for (ClassLoader l : loaders) {
            for (ClassLoader at = l; at != null && seen.add(at); at = at.getParent()) {
                if (at instanceof URLClassLoader u) {
                    for (URL url : u.getURLs()) {
                        addUrl(out, url);
                    }
                }
            }
        }
        for (Class<?> c : classes) {
            addCodeSource(out, c);
        }
        return List.copyOf(out);
    }

    /**
     * @param entries class path entries
     * @return them as one {@code -cp} argument
     */
    public static String argument(List<Path> entries) {
        return String.join(File.pathSeparator, entries.stream().map(Path::toString).toList());
    }

    private static void addCodeSource(Set<Path> out, Class<?> c) {
        try {
            CodeSource source = c.getProtectionDomain().getCodeSource();
            if (source != null && source.getLocation() != null) {
                addUrl(out, source.getLocation());
            }
        } catch (SecurityException e) {
            // no code source to be had: java.class.path and the loaders' URLs remain
        }
    }

    /** Only {@code file:} URLs without a host: a jar on a web server or a share is never put on the class path. */
    private static void addUrl(Set<Path> out, URL url) {
        if (!"file".equalsIgnoreCase(url.getProtocol()) || (url.getHost() != null && !url.getHost().isEmpty())) {
            return;
        }
        try {
            addIfExists(out, Path.of(url.toURI()));
        } catch (URISyntaxException | IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
            // not a plain local path
        }
    }

    private static void addIfExists(Set<Path> out, Path p) {
        try {
            Path abs = p.toAbsolutePath().normalize();
            if (Files.exists(abs)) {
                out.add(abs);
            }
        } catch (java.nio.file.InvalidPathException | SecurityException e) {
            // an entry that names no path here
        }
    }
}
