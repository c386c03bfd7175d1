package dev.kiln.tensor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

@Timeout(30)
class DeviceTensorTest {

    @Test
    void describesDeviceMemory() {
        DeviceTensor t = new DeviceTensor(1, 0x7f00_0000_1000L, DType.F32, 0x55L, 2, 3);
        assertEquals(1, t.device());
        assertEquals(0x7f00_0000_1000L, t.pointer());
        assertEquals(DType.F32, t.dtype());
        assertEquals(0x55L, t.stream());
        assertArrayEquals(new long[] {2, 3}, t.shape());
        assertEquals(2, t.rank());
        assertEquals(3, t.dim(1));
        assertEquals(6, t.numel());
        assertEquals(24, t.byteSize());
        assertEquals("DeviceTensor[F32[2, 3] on gpu1 at 0x7f0000001000, stream 0x55]", t.toString());
    }

    @Test
    void scalarAndEmpty() {
        DeviceTensor scalar = new DeviceTensor(0, 64, DType.F64, DeviceTensor.DEFAULT_STREAM);
        assertEquals(0, scalar.rank());
        assertEquals(1, scalar.numel());
        assertEquals(8, scalar.byteSize());
        DeviceTensor empty = new DeviceTensor(0, 0, DType.I8, 0, 4, 0);
        assertEquals(0, empty.byteSize());
        assertEquals(0, empty.numel());
    }

    @Test
    void shapeIsCopiedInAndOut() {
        long[] shape = {4};
        DeviceTensor t = new DeviceTensor(0, 64, DType.I32, 0, shape);
        shape[0] = 99;
        assertEquals(4, t.dim(0));
        t.shape()[0] = 7;
        assertEquals(4, t.dim(0));
    }

    @Test
    void equalityIsByValue() {
        DeviceTensor t = new DeviceTensor(0, 64, DType.BF16, 3, 8);
        assertEquals(t, new DeviceTensor(0, 64, DType.BF16, 3, 8));
        assertEquals(t.hashCode(), new DeviceTensor(0, 64, DType.BF16, 3, 8).hashCode());
        assertNotEquals(t, new DeviceTensor(1, 64, DType.BF16, 3, 8));
        assertNotEquals(t, new DeviceTensor(0, 128, DType.BF16, 3, 8));
        assertNotEquals(t, new DeviceTensor(0, 64, DType.F16, 3, 8));
        assertNotEquals(t, new DeviceTensor(0, 64, DType.BF16, 4, 8));
        assertNotEquals(t, new DeviceTensor(0, 64, DType.BF16, 3, 8, 1));
    }

    @Test
    void invalidDescriptionsAreRejected() {
        assertEquals("device must be >= 0, got -1", assertThrows(IllegalArgumentException.class,
                () -> new DeviceTensor(-1, 64, DType.F32, 0, 1)).getMessage());
        assertEquals("negative dimension in [2, -1]", assertThrows(IllegalArgumentException.class,
                () -> new DeviceTensor(0, 64, DType.F32, 0, 2, -1)).getMessage());
        assertEquals("null device pointer for F32[2] (8 bytes)", assertThrows(IllegalArgumentException.class,
                () -> new DeviceTensor(0, 0, DType.F32, 0, 2)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> new DeviceTensor(0, 64, DType.F64, 0, Long.MAX_VALUE / 4));
        assertThrows(IllegalArgumentException.class, () -> new DeviceTensor(0, 64, DType.I8, 0, Long.MAX_VALUE, 2));
        assertThrows(NullPointerException.class, () -> new DeviceTensor(0, 64, null, 0, 1));
    }
}
