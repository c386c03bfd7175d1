package dev.kiln;

import java.io.File;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A child JVM's main for {@link WorkerStartTest}, as {@code mvn exec:java} launches an application: this class alone
 * is on the JVM's class path (its {@code .class} file copied to a directory of its own), and the application, Kiln
 * included, is loaded through a {@code URLClassLoader}, which is also the thread context class loader. Uses only the
 * JDK.
 */
public final class ExecJavaLauncher {

    private ExecJavaLauncher() {
    }

    /**
     * @param args the main class to run through the loader, the class path of the loader (entries separated by the
     *             platform's path separator), then the main class's arguments
     * @throws Exception if the main class fails
     */
    public static void main(String[] args) throws Exception {
        List<URL> urls = new ArrayList<>();
        for (String entry : args[1].split(File.pathSeparator)) {
            if (!entry.isEmpty()) {
                urls.add(Path.of(entry).toUri().toURL());
            }
        }
        URLClassLoader loader = new URLClassLoader("exec-java", urls.toArray(URL[]::new),
                ClassLoader.getSystemClassLoader());
        Thread.currentThread().setContextClassLoader(loader);
        Method main = Class.forName(args[0], true, loader).getMethod("main", String[].class);
        main.invoke(null, (Object) Arrays.copyOfRange(args, 2, args.length));
    }
}
