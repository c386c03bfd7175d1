package dev.kiln.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import org.junit.jupiter.api.Test;

class JCudaPointersTest {
    @Test
    void addressRoundTripsThroughAJCudaPointer() {
        long address = 0x7f00_1234_5000L;
        jcuda.Pointer pointer = JCudaPointers.toPointer(address);
        assertEquals(address, JCudaPointers.address(pointer));
        assertEquals(address + 256, JCudaPointers.address(pointer.withByteOffset(256)));
    }

    @Test
    void aPointerIntoAJavaArrayIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JCudaPointers.address(jcuda.Pointer.to(new float[4])));
        assertTrue(e.getMessage().contains("not native memory"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> JCudaPointers.address(null));
    }

    @Test
    void withoutJCudaOnTheClassPathTheCallSaysWhatToAdd() throws Exception {
        URL classes = JCudaPointers.class.getProtectionDomain().getCodeSource().getLocation();
        URL testClasses = Caller.class.getProtectionDomain().getCodeSource().getLocation();
        try (URLClassLoader withoutJCuda = new URLClassLoader(new URL[] {classes, testClasses},
                ClassLoader.getPlatformClassLoader())) {
            Method call = withoutJCuda.loadClass(Caller.class.getName()).getMethod("call");
            InvocationTargetException e = assertThrows(InvocationTargetException.class, () -> call.invoke(null));
            IllegalStateException cause = assertInstanceOf(IllegalStateException.class, e.getCause());
            assertTrue(cause.getMessage().contains("org.jcuda:jcuda"), cause.getMessage());
        }
    }

    /** Calls the interop as compiled code does; loaded where JCuda is absent. */
    public static final class Caller {
        private Caller() {
        }

        /** Makes a pointer and drops it. */
        public static void call() {
            JCudaPointers.toPointer(1L);
        }
    }
}
