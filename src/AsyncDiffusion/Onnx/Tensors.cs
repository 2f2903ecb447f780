using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Onnx;

/// <summary>Creating ORT inputs from float/int arrays in the element type a graph declares (fp32/fp16, int32/int64), and reading outputs back as float32.</summary>
public static class Tensors
{
    public static OrtValue Float(ReadOnlySpan<float> data, long[] shape, TensorElementType type)
    {
        switch (type)
        {
            case TensorElementType.Float:
            {
                var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, shape);
                data.CopyTo(v.GetTensorMutableDataAsSpan<float>());
                return v;
            }
            case TensorElementType.Float16:
            {
                var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float16, shape);
                var dst = v.GetTensorMutableDataAsSpan<Float16>();
                for (int i = 0; i < data.Length; i++) dst[i] = (Float16)data[i];
                return v;
            }
            case TensorElementType.Int64:
            {
                var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Int64, shape);
                var dst = v.GetTensorMutableDataAsSpan<long>();
                // Truncates, as numpy does when an old ONNX pipeline casts a float timestep to int64.
                for (int i = 0; i < data.Length; i++) dst[i] = (long)data[i];
                return v;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "Expected a float, float16 or int64 tensor.");
        }
    }

    public static OrtValue Ids(ReadOnlySpan<int> ids, long[] shape, TensorElementType type)
    {
        var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
        if (type == TensorElementType.Int32) ids.CopyTo(v.GetTensorMutableDataAsSpan<int>());
        else
        {
            var dst = v.GetTensorMutableDataAsSpan<long>();
            for (int i = 0; i < ids.Length; i++) dst[i] = ids[i];
        }
        return v;
    }

    public static long[] Shape(OrtValue value) => value.GetTensorTypeAndShape().Shape;

    /// <summary>Copies a float32 or float16 output into a new float array.</summary>
    public static float[] ToFloats(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var result = new float[info.ElementCount];
        if (info.ElementDataType == TensorElementType.Float) value.GetTensorDataAsSpan<float>().CopyTo(result);
        else if (info.ElementDataType == TensorElementType.Float16)
        {
            var src = value.GetTensorDataAsSpan<Float16>();
            for (int i = 0; i < result.Length; i++) result[i] = (float)src[i];
        }
        else throw new ModelFolderException($"Expected a float or float16 output, got {info.ElementDataType}.");
        return result;
    }
}
